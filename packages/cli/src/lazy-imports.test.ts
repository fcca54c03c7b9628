import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = new URL('../bin/minipaas.js', import.meta.url).pathname;

/** Records every module URL the process resolves (static and dynamic imports, require) into TRACE_FILE. */
const HOOK = `
import module from 'node:module';
import { appendFileSync } from 'node:fs';
module.registerHooks({
  resolve(spec, ctx, next) {
    const r = next(spec, ctx);
    appendFileSync(process.env.TRACE_FILE, r.url + '\\n');
    return r;
  },
});
`;

/** The heavy packages only some commands need: zod (via core's index), yaml, the swarm toolkit, node-tar. */
const HEAVY = /\/node_modules\/(zod|yaml|tar|ignore|@balena\/dockerignore)\/|\/packages\/swarm\//;
const heavy = (urls: string[]): string[] => [...new Set(urls.filter((u) => HEAVY.test(u)))];

describe('minipaas loads heavy modules only in the commands that use them', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mp-lazy-'));
    await writeFile(join(dir, 'hook.mjs'), HOOK);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs the bin with `args`; returns its stdout and every module URL it resolved. */
  async function trace(name: string, args: string[]): Promise<{ stdout: string; urls: string[] }> {
    const file = join(dir, `${name}.txt`);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', join(dir, 'hook.mjs'), BIN, ...args],
        { env: { ...process.env, TRACE_FILE: file, NO_COLOR: '1' }, timeout: 30_000 },
        (err, out, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(out)),
      );
    });
    return { stdout, urls: (await readFile(file, 'utf8')).split('\n').filter(Boolean) };
  }

  it('--version', async () => {
    const { stdout, urls } = await trace('version', ['--version']);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(urls.some((u) => u.endsWith('/packages/cli/src/main.ts'))).toBe(true);
    expect(heavy(urls)).toEqual([]);
  });

  it('deploy --help (every command is still registered with its options)', async () => {
    const { stdout, urls } = await trace('deploy-help', ['deploy', '--help']);
    expect(stdout).toContain('--app <name>');
    expect(stdout).toContain('minipaas deploy rollout');
    expect(heavy(urls)).toEqual([]);
  });
});
