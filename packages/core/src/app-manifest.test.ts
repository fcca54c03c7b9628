import { describe, expect, it } from 'vitest';
import { parseAppManifest } from './app-manifest.ts';

describe('parseAppManifest', () => {
  it('reads runtime, dockerfile and buildCache, and lists unknown keys', () => {
    expect(
      parseAppManifest('runtime: docker\ndockerfile: docker/web.Dockerfile\nbuildCache: false\nfoo: 1\n'),
    ).toEqual({
      runtime: 'docker',
      dockerfile: 'docker/web.Dockerfile',
      buildCache: false,
      unknownKeys: ['foo'],
    });
  });

  it('accepts an empty file or one with only comments', () => {
    expect(parseAppManifest('')).toEqual({ unknownKeys: [] });
    expect(parseAppManifest('# nothing yet\n')).toEqual({ unknownKeys: [] });
  });

  it.each([
    ['runtime: swarmish\n', /runtime/],
    ['dockerfile: ../outside/Dockerfile\n', /dockerfile must be a path inside the source/],
    ['dockerfile: /etc/passwd\n', /dockerfile must be a path inside the source/],
    ['dockerfile: "a/../../b"\n', /dockerfile must be a path inside the source/],
    ['dockerfile: "a\\0b"\n', /dockerfile must be a path inside the source/],
    ['buildCache: "no"\n', /buildCache/],
    ['- runtime: docker\n', /expected a mapping/],
    ['runtime: docker\nruntime: process\n', /minipaas.yaml: /],
    ['runtime: [docker\n', /minipaas.yaml: /],
  ])('refuses %j with a clear message', (text, msg) => {
    expect(() => parseAppManifest(text)).toThrow(msg);
  });

  it('keeps prototype names as plain unknown keys', () => {
    const m = parseAppManifest('__proto__: {runtime: docker}\nconstructor: x\n');
    expect(m.runtime).toBeUndefined();
    expect(m.unknownKeys.sort()).toEqual(['__proto__', 'constructor']);
    expect(({} as Record<string, unknown>).runtime).toBeUndefined();
  });
});
