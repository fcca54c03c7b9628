import { lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appDirs, prepareAppDirs, prepareReleaseDir, resolveRunAs } from './run-as.ts';

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

  it('locks a release inside the home to root:gid read-only and makes the path down to it traversable', async () => {
    const who = (await resolveRunAs(undefined))!;
    const home = mkdtempSync(join(tmpdir(), 'mp-runas-'));
    made.push(home);
    const dir = join(home, 'releases', 'a', 'v1');
    mkdirSync(join(dir, 'sub'), { recursive: true, mode: 0o777 });
    writeFileSync(join(dir, 'sub', 'f.js'), '', { mode: 0o666 });
    writeFileSync(join(dir, 'run.sh'), '', { mode: 0o4777 });
    symlinkSync('/etc/hostname', join(dir, 'link'));
    const target = statSync('/etc/hostname');
    await prepareReleaseDir(home, dir, who);
    const mode = (p: string) => statSync(p).mode & 0o7777;
    for (const p of [dir, join(dir, 'sub'), join(dir, 'sub', 'f.js'), join(dir, 'run.sh')]) {
      expect(statSync(p).uid).toBe(0);
      expect(statSync(p).gid).toBe(who.gid);
    }
    expect(mode(dir)).toBe(0o750);
    expect(mode(join(dir, 'sub'))).toBe(0o750);
    expect(mode(join(dir, 'sub', 'f.js'))).toBe(0o640);
    expect(mode(join(dir, 'run.sh'))).toBe(0o750); // executable kept, setuid gone
    expect(mode(join(home, 'releases', 'a'))).toBe(0o750);
    expect(lstatSync(join(dir, 'link')).gid).toBe(who.gid);
    // the symlink's target was neither chowned nor chmodded
    expect(statSync('/etc/hostname').gid).toBe(target.gid);
    expect(mode('/etc/hostname')).toBe(target.mode & 0o7777);
    expect(statSync(home).mode & 0o001).toBe(0o001);
    expect(statSync(join(home, 'releases')).mode & 0o001).toBe(0o001);
  });

  it('gives the app its own data and tmp dirs under a root:gid apps/<app>', async () => {
    const who = (await resolveRunAs(undefined))!;
    const home = mkdtempSync(join(tmpdir(), 'mp-runas-'));
    made.push(home);
    await prepareAppDirs(home, 'a', who);
    const dirs = appDirs(home, 'a');
    for (const d of [dirs.data, dirs.tmp]) {
      expect(statSync(d).uid).toBe(who.uid);
      expect(statSync(d).mode & 0o7777).toBe(0o700);
    }
    expect(statSync(dirs.root).uid).toBe(0);
    expect(statSync(dirs.root).gid).toBe(who.gid);
    expect(statSync(dirs.root).mode & 0o7777).toBe(0o750);
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
