import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prepareReleaseDir, resolveRunAs } from './run-as.ts';

const root = process.getuid?.() === 0;

describe.runIf(root)('running apps as an unprivileged user (agent is root)', () => {
  const made: string[] = [];
  afterAll(() => {
    for (const d of made) rmSync(d, { recursive: true, force: true });
  });

  it('resolves nobody by default, a configured user, and root as "no switch"', async () => {
    const nobody = await resolveRunAs(undefined);
    expect(nobody?.user).toBe('nobody');
    expect(nobody?.uid).toBeGreaterThan(0);
    expect(await resolveRunAs('root')).toBeNull();
    await expect(resolveRunAs('no-such-user-xyz')).rejects.toThrow(/does not exist/);
  });

  it('chowns a release inside the home and makes the path down to it traversable', async () => {
    const who = (await resolveRunAs(undefined))!;
    const home = mkdtempSync(join(tmpdir(), 'mp-runas-'));
    made.push(home);
    const dir = join(home, 'releases', 'a', 'v1');
    mkdirSync(join(dir, 'sub'), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'sub', 'f.js'), '');
    await prepareReleaseDir(home, dir, who);
    expect(statSync(join(dir, 'sub', 'f.js')).uid).toBe(who.uid);
    expect(statSync(dir).uid).toBe(who.uid);
    expect(statSync(home).mode & 0o001).toBe(0o001);
    expect(statSync(join(home, 'releases', 'a')).mode & 0o001).toBe(0o001);
  });

  it('refuses a directory outside the home behind a non-traversable ancestor', async () => {
    const who = (await resolveRunAs(undefined))!;
    const outside = mkdtempSync(join(tmpdir(), 'mp-private-'));
    made.push(outside);
    const dir = join(outside, 'app');
    mkdirSync(dir);
    const home = mkdtempSync(join(tmpdir(), 'mp-runas-'));
    made.push(home);
    await expect(prepareReleaseDir(home, dir, who)).rejects.toThrow(/not traversable by that user/);
    // nothing outside the home was touched
    expect(statSync(outside).mode & 0o777).toBe(0o700);
  });
});
