/**
 * Apps cannot attack each other: on a real platform run as root, app A tries to read app B's environment
 * (its secrets), change B's release, signal B and poison B's build cache and data; every attempt is refused
 * by the kernel because each app runs, and builds, as its own unprivileged uid.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { InstanceInfo } from '@minipaas/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, type Platform, routerGet, startPlatform } from '../helpers/platform.ts';

const execFileP = promisify(execFile);
const root = process.getuid?.() === 0;
const SECRET = `sk_live_${Math.random().toString(36).slice(2)}_b_only`;

/** App B: a web server holding a secret in its env; its install script records who ran it. */
const B_SERVER = `
const http = require('node:http');
http.createServer((req, res) => res.end(String(process.pid))).listen(Number(process.env.PORT));
`;

/** App A: answers /attack with what happened when it went after B (and after its own release). */
const A_SERVER = `
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
function attempt(fn) {
  try {
    const v = fn();
    return { ok: true, value: v === undefined ? null : String(v).slice(0, 2000) };
  } catch (e) {
    return { ok: false, code: e.code };
  }
}
http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname !== '/attack') return res.end('a');
  const pid = Number(u.searchParams.get('pid'));
  const home = u.searchParams.get('home');
  const rel = path.join(home, 'releases', 'b', 'v1');
  const out = {
    uid: process.getuid(),
    gid: process.getgid(),
    groups: process.getgroups(),
    readEnviron: attempt(() => fs.readFileSync('/proc/' + pid + '/environ', 'utf8')),
    appendRelease: attempt(() => fs.appendFileSync(path.join(rel, 'server.js'), '\\nprocess.exit(1)')),
    createInRelease: attempt(() => fs.writeFileSync(path.join(rel, 'evil.js'), 'x')),
    listRelease: attempt(() => fs.readdirSync(rel).join(',')),
    listReleases: attempt(() => fs.readdirSync(path.join(home, 'releases')).join(',')),
    kill: attempt(() => process.kill(pid, 'SIGKILL')),
    writeCache: attempt(() => fs.writeFileSync(path.join(home, 'cache', 'b', 'poison'), 'x')),
    writeCacheParent: attempt(() => fs.mkdirSync(path.join(home, 'cache', 'b2'))),
    writeData: attempt(() => fs.writeFileSync(path.join(home, 'apps', 'b', 'data', 'evil'), 'x')),
    writeTmp: attempt(() => fs.writeFileSync(path.join(home, 'apps', 'b', 'tmp', 'evil'), 'x')),
    ownRelease: attempt(() => fs.writeFileSync(path.join(process.cwd(), 'self.txt'), 'x')),
    ownReleaseAppend: attempt(() => fs.appendFileSync(path.join(process.cwd(), 'server.js'), '//')),
    ownData: attempt(() => fs.writeFileSync(path.join(process.env.HOME, 'ok'), 'x')),
    ownTmp: attempt(() => fs.writeFileSync(path.join(process.env.TMPDIR, 'ok'), 'x')),
    home: process.env.HOME,
    tmp: process.env.TMPDIR,
  };
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(out));
}).listen(Number(process.env.PORT));
`;

/** An app dir with a local dependency, so the deploy runs a real `npm install` (offline) with a postinstall. */
async function appDir(name: string, server: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `mp-iso-${name}-`));
  await mkdir(join(dir, 'dep'));
  await writeFile(join(dir, 'dep', 'package.json'), JSON.stringify({ name: 'dep', version: '1.0.0' }));
  await writeFile(
    join(dir, 'package.json'),
    JSON.stringify({
      name,
      version: '1.0.0',
      private: true,
      dependencies: { dep: 'file:./dep' },
      scripts: {
        start: 'node server.js',
        postinstall: `node -e "require('fs').writeFileSync('installed-by', String(process.getuid()))"`,
      },
    }),
  );
  await writeFile(join(dir, 'server.js'), server);
  return dir;
}

function procIds(pid: number, status: string): { uid: number; gid: number } {
  const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
  const gid = /^Gid:\s+(\d+)/m.exec(status)?.[1];
  if (!uid || !gid) throw new Error(`no ids in /proc/${pid}/status`);
  return { uid: Number(uid), gid: Number(gid) };
}

type Attempt = { ok: boolean; code?: string; value?: string | null };
type Report = Record<string, Attempt> & {
  uid: number;
  gid: number;
  groups: number[];
  home: string;
  tmp: string;
};

describe.runIf(root)('apps cannot attack each other (platform runs as root)', () => {
  let p: Platform;
  const dirs: string[] = [];
  const uidMin = 300_000 + Math.floor(Math.random() * 1000) * 100;

  beforeAll(async () => {
    p = await startPlatform({
      MINIPAAS_APP_UID_MIN: String(uidMin),
      MINIPAAS_APP_UID_MAX: String(uidMin + 99),
    });
  }, 90_000);

  afterAll(async () => {
    for (const app of ['a', 'b']) await p?.api('DELETE', `/api/v1/apps/${app}`);
    await p?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function instance(app: string): Promise<InstanceInfo> {
    const r = await p.cli(['ps', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const parsed = JSON.parse(r.stdout) as InstanceInfo[] | { instances: InstanceInfo[] };
    const list = Array.isArray(parsed) ? parsed : parsed.instances;
    const i = list.find((x) => x.status === 'running');
    if (!i?.pid) throw new Error(`no running instance of ${app}`);
    return i;
  }

  it('runs and builds every app as its own unprivileged uid; A is refused everything against B', async () => {
    const created = await p.api('POST', '/api/v1/apps', { name: 'b', env: { SECRET_TOKEN: SECRET } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const bDir = await appDir('b', B_SERVER);
    const aDir = await appDir('a', A_SERVER);
    dirs.push(aDir, bDir);
    for (const [app, dir] of [
      ['b', bDir],
      ['a', aDir],
    ] as const) {
      const r = await p.cli(['deploy', dir, '--app', app]);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    }
    const b = await instance('b');
    const bPid = b.pid as number;
    const bIds = procIds(bPid, await readFile(`/proc/${bPid}/status`, 'utf8'));
    expect(bIds.uid).toBeGreaterThanOrEqual(uidMin);
    expect(bIds.uid).toBeLessThanOrEqual(uidMin + 99);
    expect(bIds.gid).toBe(bIds.uid);
    // B's install script ran as B's uid too
    expect(await readFile(join(p.home, 'releases', 'b', 'v1', 'installed-by'), 'utf8')).toBe(
      String(bIds.uid),
    );
    // the secret really is in B's environment (root can see it)
    expect(await readFile(`/proc/${bPid}/environ`, 'utf8')).toContain(SECRET);

    const res = await routerGet(
      p.routerPort,
      `/attack?pid=${bPid}&home=${encodeURIComponent(p.home)}`,
      `a.localhost:${p.routerPort}`,
    );
    expect(res.status, res.body).toBe(200);
    const a = JSON.parse(res.body) as Report;
    expect(res.body).not.toContain(SECRET);

    // A is a different, unprivileged user with no supplementary groups
    expect(a.uid).toBeGreaterThanOrEqual(uidMin);
    expect(a.uid).toBeLessThanOrEqual(uidMin + 99);
    expect(a.uid).not.toBe(bIds.uid);
    expect(a.gid).not.toBe(bIds.gid);
    expect(a.groups.filter((g) => g !== a.gid)).toEqual([]);
    expect(await readFile(join(p.home, 'releases', 'a', 'v1', 'installed-by'), 'utf8')).toBe(String(a.uid));

    // every attack on B is refused by the kernel
    const refused = (k: string, codes: string[]) =>
      expect({ [k]: a[k] }).toEqual({
        [k]: { ok: false, code: expect.toSatisfy((c: string) => codes.includes(c)) },
      });
    refused('readEnviron', ['EACCES']);
    refused('appendRelease', ['EACCES']);
    refused('createInRelease', ['EACCES']);
    refused('listRelease', ['EACCES']);
    refused('listReleases', ['EACCES']);
    refused('kill', ['EPERM']);
    refused('writeCache', ['EACCES']);
    refused('writeCacheParent', ['EACCES']);
    refused('writeData', ['EACCES']);
    refused('writeTmp', ['EACCES']);
    // A cannot change its own release either, but can write its data and tmp dirs
    refused('ownRelease', ['EACCES']);
    refused('ownReleaseAppend', ['EACCES']);
    expect(a.ownData).toEqual({ ok: true, value: null });
    expect(a.ownTmp).toEqual({ ok: true, value: null });
    expect(a.home).toBe(join(p.home, 'apps', 'a', 'data'));
    expect(a.tmp).toBe(join(p.home, 'apps', 'a', 'tmp'));

    // B is untouched: same process, still serving, release unchanged
    expect(isAlive(bPid)).toBe(true);
    expect((await instance('b')).pid).toBe(bPid);
    expect((await routerGet(p.routerPort, '/', `b.localhost:${p.routerPort}`)).body).toBe(String(bPid));
    expect(await readFile(join(p.home, 'releases', 'b', 'v1', 'server.js'), 'utf8')).toBe(B_SERVER);
  });

  it('removes the OS user and the writable places of a deleted app', async () => {
    const b = await instance('b');
    const { uid } = procIds(b.pid as number, await readFile(`/proc/${b.pid}/status`, 'utf8'));
    const entry = (await execFileP('getent', ['passwd', String(uid)])).stdout;
    expect(entry).toMatch(new RegExp(`^mp${uid}:x:${uid}:${uid}:MiniPaaS app b:`));
    const del = await p.api('DELETE', '/api/v1/apps/b');
    expect(del.status, JSON.stringify(del.body)).toBeLessThan(300);
    // The uid is free again: gone, or already taken by an app of a platform another test file runs.
    const after = await execFileP('getent', ['passwd', String(uid)]).then(
      (r) => r.stdout,
      (err: { code?: number }) => `exit ${err.code}`,
    );
    if (after !== 'exit 2') expect(after).not.toBe(entry);
    await expect(readFile(join(p.home, 'apps', 'b', 'data', 'x'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(execFileP('ls', [join(p.home, 'cache', 'b')])).rejects.toBeTruthy();
  });
});
