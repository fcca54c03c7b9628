import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { APP_JSON_MAX_BYTES, parseAppJson, readAppJson } from './app-json.ts';

describe('parseAppJson', () => {
  it('normalises Heroku and Dokku fields and ignores unknown keys', () => {
    const a = parseAppJson(
      JSON.stringify({
        name: 'x',
        addons: ['heroku-postgresql'],
        scripts: {
          dokku: { predeploy: 'echo pre', postdeploy: 'echo post' },
          postdeploy: { command: 'echo h' },
        },
        env: {
          A: 'a',
          B: { value: 'b', description: 'd' },
          S: { generator: 'secret' },
          R: { required: true },
        },
        formation: { web: { quantity: 2, size: 'basic' }, worker: { quantity: 1 } },
        healthchecks: { web: [{ type: 'startup', path: '/health', content: 'ok', attempts: 3, timeout: 5 }] },
      }),
    );
    expect(a.scripts).toEqual({ predeploy: 'echo pre', postdeploy: 'echo post', herokuPostdeploy: 'echo h' });
    expect(a.env.A).toEqual({ value: 'a', required: false });
    expect(a.env.S?.generator).toBe('secret');
    expect(a.env.R?.required).toBe(true);
    expect(a.formation.worker).toEqual({ quantity: 1 });
    expect(a.healthchecks.web[0]).toMatchObject({
      type: 'startup',
      path: '/health',
      content: 'ok',
      attempts: 3,
    });
  });
  it('accepts a string Heroku postdeploy and an empty object', () => {
    expect(parseAppJson('{"scripts":{"postdeploy":"bin/seed"}}').scripts.herokuPostdeploy).toBe('bin/seed');
    expect(parseAppJson('{}').healthchecks.web).toEqual([]);
  });
  it('names the field of a bad shape', () => {
    expect(() => parseAppJson('{"formation":{"web":{"quantity":"two"}}}')).toThrow(
      /formation\.web\.quantity/,
    );
    expect(() => parseAppJson('{"healthchecks":{"web":[{"type":"bogus"}]}}')).toThrow(
      /healthchecks\.web\.0\.type/,
    );
    expect(() => parseAppJson('{"env":{"A":5}}')).toThrow(/env\.A/);
    expect(() => parseAppJson('[]')).toThrow(/JSON object/);
    expect(() => parseAppJson('{')).toThrow(/not valid JSON/);
  });
  it('keeps __proto__ and constructor as plain names without touching prototypes', () => {
    const a = parseAppJson(
      '{"env":{"__proto__":{"value":"x"},"constructor":"y"},"formation":{"constructor":{"quantity":0}}}',
    );
    expect(Object.keys(a.env).sort()).toEqual(['__proto__', 'constructor']);
    expect(a.env.constructor).toEqual({ value: 'y', required: false });
    expect(a.formation.constructor).toEqual({ quantity: 0 });
    expect(({} as Record<string, unknown>).value).toBeUndefined();
  });
  it('refuses huge files', async () => {
    expect(() => parseAppJson(`{"x":"${'a'.repeat(APP_JSON_MAX_BYTES)}"}`)).toThrow(/larger than/);
    const dir = await mkdtemp(join(tmpdir(), 'appjson-'));
    try {
      expect(await readAppJson(dir)).toBeNull();
      await writeFile(join(dir, 'app.json'), `{"x":"${'a'.repeat(APP_JSON_MAX_BYTES)}"}`);
      await expect(readAppJson(dir)).rejects.toThrow(/larger than/);
      await writeFile(join(dir, 'app.json'), '{"formation":{"web":{"quantity":1}}}');
      expect((await readAppJson(dir))?.formation.web?.quantity).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
