import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectStack, STATIC_SERVER } from './stack-detector.ts';

async function dir(files: Record<string, string>): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mp-stack-'));
  for (const [name, body] of Object.entries(files)) await writeFile(join(d, name), body);
  return d;
}

describe('detectStack', () => {
  it('prefers a Procfile, and installs Node deps with the lockfile manager', async () => {
    const d = await dir({
      Procfile: 'web: node server.js\nworker: node worker.js\n',
      'package.json': JSON.stringify({ scripts: { start: 'node other.js' }, dependencies: { x: '1' } }),
      'package-lock.json': '{}',
    });
    const s = await detectStack(d, '/usr/bin', '/node');
    expect(s.stack).toBe('procfile');
    expect(s.commands).toEqual({ web: 'node server.js', worker: 'node worker.js' });
    expect(s.steps).toEqual([{ program: 'npm', args: ['ci', '--omit=dev', '--no-audit', '--no-fund'] }]);
    expect(s.env.PATH).toBe(`${d}/node_modules/.bin:/usr/bin`);
  });
  it('uses the start script, with yarn or pnpm from their lockfiles, and no install without deps', async () => {
    const yarn = await detectStack(
      await dir({
        'package.json': JSON.stringify({ scripts: { start: 'node s.js' }, dependencies: { a: '1' } }),
        'yarn.lock': '',
      }),
      '',
      '/node',
    );
    expect(yarn).toMatchObject({
      stack: 'node',
      commands: { web: 'node s.js' },
      steps: [{ program: 'yarn' }],
    });
    const pnpm = await detectStack(
      await dir({
        'package.json': JSON.stringify({ scripts: { start: 'x' }, dependencies: { a: '1' } }),
        'pnpm-lock.yaml': '',
      }),
      '',
      '/node',
    );
    expect(pnpm.steps[0]?.program).toBe('pnpm');
    const none = await detectStack(
      await dir({ 'package.json': JSON.stringify({ scripts: { start: 'x' } }) }),
      '',
      '/node',
    );
    expect(none.steps).toEqual([]);
  });
  it('serves a static site with the built-in server', async () => {
    const s = await detectStack(await dir({ 'index.html': '<h1>x</h1>' }), '', '/opt/node bin/node');
    expect(s.stack).toBe('static');
    expect(s.commands.web).toBe(`'/opt/node bin/node' '${STATIC_SERVER}' .`);
  });
  it('explains what is missing', async () => {
    await expect(detectStack(await dir({ 'README.md': 'hi' }), '', '/node')).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_NO_STACK',
    });
    await expect(detectStack(await dir({ 'package.json': '{}' }), '', '/node')).rejects.toThrow(
      /no "start" script/,
    );
    await expect(detectStack(await dir({ 'package.json': '{oops' }), '', '/node')).rejects.toThrow(
      /not valid JSON/,
    );
    await expect(detectStack(await dir({ Procfile: 'web node x' }), '', '/node')).rejects.toThrow(/line 1/);
  });
});
