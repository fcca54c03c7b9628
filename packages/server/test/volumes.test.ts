/**
 * Volumes through the HTTP API in-process (`app.inject`) on a real Postgres database, a real node agent
 * and real files: create/list/delete, multipart upload, download, mkdir, delete, quotas (413 with the
 * numbers), a traversal corpus that must be refused with 400 and touch nothing, symbolic links the app
 * created itself, and backup/restore with hostile tarballs. The deploy test proves that an upload is
 * visible to the app through MINIPAAS_VOLUME_<NAME> and survives a redeploy.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig, type MinipaasConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { c as tarCreate } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { rawTar } from '../../../test/helpers/tarball.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let config: MinipaasConfig;
let agent: AgentHandle;
let cp: ControlPlane;
let auth: { authorization: string };
let drop: () => Promise<void> = async () => {};

/** A multipart/form-data body with one part per file. */
function multipart(files: Array<{ name: string; body: Buffer | string; field?: string }>) {
  const boundary = `----mp${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const f of files) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${f.field ?? 'file'}"; filename="${f.name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
    );
    chunks.push(Buffer.isBuffer(f.body) ? f.body : Buffer.from(f.body));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

const q = (p: string) => encodeURIComponent(p);

async function inject(
  method: string,
  url: string,
  extra: { payload?: unknown; headers?: Record<string, string> } = {},
) {
  return cp.app.inject({
    method: method as 'GET',
    url,
    headers: { ...auth, ...(extra.headers ?? {}) },
    ...(extra.payload !== undefined ? { payload: extra.payload as string } : {}),
  });
}

async function createVolume(body: Record<string, unknown>) {
  // Volumes of one project mounted into the same apps need their own mount paths.
  const payload = { mountPath: `/app/${body.name}`, ...body };
  const r = await inject('POST', '/api/v1/projects/default/volumes', { payload });
  expect(r.statusCode, r.body).toBe(201);
  return r.json<{ id: string; name: string; envVar: string; dockerVolume: string; projectId: string }>();
}

/** Every file under `dir` with a digest of its content (links by their target), to prove nothing changed. */
async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        out[`${p}/`] = 'dir';
        await walk(p);
      } else if (e.isSymbolicLink()) out[p] = `link`;
      else
        out[p] = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
    }
  };
  await walk(dir);
  return out;
}

async function waitDeployment(id: string): Promise<DeploymentView> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const r = await inject('GET', `/api/v1/deployments/${id}`);
    const d = r.json<DeploymentView>();
    if (['running', 'failed', 'stopped'].includes(d.status)) return d;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('deployment did not finish');
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-volumes-'));
  const portMin = 21000 + Math.floor(Math.random() * 80) * 100;
  config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_APP_PORT_MIN: String(portMin),
    MINIPAAS_APP_PORT_MAX: String(portMin + 99),
    MINIPAAS_ROUTER_PORT: String(await freePort()),
    MINIPAAS_STOP_GRACE_MS: '2000',
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  const logger = pino({ level: 'silent' });
  agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
  const db = await createTestDatabase('volumes');
  drop = db.drop;
  cp = await createControlPlane({
    config: { ...config, databaseUrl: db.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
    reconcile: false,
  });
  auth = { authorization: `Bearer ${cp.createdAdminToken}` };
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await drop();
  await rm(home, { recursive: true, force: true });
});

describe('volumes API', () => {
  it('creates, lists and refuses bad or duplicate volumes', async () => {
    const v = await createVolume({ name: 'media', mountPath: '/app/media' });
    expect(v.envVar).toBe('MINIPAAS_VOLUME_MEDIA');
    expect(v.dockerVolume).toBe(`minipaas-vol-${v.projectId}-${v.id}`);
    expect((await lstat(join(home, 'volumes', v.projectId, v.id))).isDirectory()).toBe(true);
    const list = await inject('GET', '/api/v1/projects/default/volumes');
    expect(list.json().volumes.map((x: { name: string }) => x.name)).toContain('media');
    for (const bad of [
      { name: '__proto__' },
      { name: '../x' },
      { name: 'A' },
      { name: 'x'.repeat(64) },
      { name: 'ok', mountPath: 'relative' },
      { name: 'ok', mountPath: '/' },
      { name: 'ok', mountPath: '/app/../etc' },
      { name: 'ok', extra: 1 },
    ]) {
      const r = await inject('POST', '/api/v1/projects/default/volumes', { payload: bad });
      expect(r.statusCode, JSON.stringify(bad)).toBe(400);
    }
    // Names like Object.prototype members are plain names.
    const proto = await createVolume({ name: 'constructor' });
    expect((await inject('GET', `/api/v1/volumes/${proto.id}`)).json().name).toBe('constructor');
    const dup = await inject('POST', '/api/v1/projects/default/volumes', { payload: { name: 'media' } });
    expect(dup.statusCode).toBe(409);
    const sameMount = await inject('POST', '/api/v1/projects/default/volumes', {
      payload: { name: 'media2', mountPath: '/app/media' },
    });
    expect(sameMount.statusCode).toBe(409);
    expect(sameMount.json().error.message).toContain('already mounted at /app/media');
    expect((await inject('GET', '/api/v1/volumes/not-a-uuid')).statusCode).toBe(404);
    expect((await inject('GET', '/api/v1/projects/nope/volumes')).statusCode).toBe(404);
    const del = await inject('DELETE', `/api/v1/volumes/${v.id}`);
    expect(del.statusCode).toBe(204);
    await expect(lstat(join(home, 'volumes', v.projectId, v.id))).rejects.toThrow();
  });

  it('uploads (multipart, streamed), lists, downloads, makes directories and deletes', async () => {
    const v = await createVolume({ name: 'files' });
    const up = multipart([
      { name: 'a.txt', body: 'hello volume' },
      { name: 'b.bin', body: Buffer.alloc(70_000, 7) },
    ]);
    const r = await inject('POST', `/api/v1/volumes/${v.id}/files?path=${q('docs/2026')}`, up);
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json().files).toEqual([
      { path: 'docs/2026/a.txt', size: 12 },
      { path: 'docs/2026/b.bin', size: 70_000 },
    ]);
    const ls = await inject('GET', `/api/v1/volumes/${v.id}/files?path=docs/2026`);
    expect(ls.json().entries.map((e: { name: string; type: string }) => `${e.type}:${e.name}`)).toEqual([
      'file:a.txt',
      'file:b.bin',
    ]);
    const dl = await inject('GET', `/api/v1/volumes/${v.id}/files/download?path=${q('docs/2026/a.txt')}`);
    expect(dl.statusCode).toBe(200);
    expect(dl.headers['content-type']).toBe('application/octet-stream');
    expect(dl.body).toBe('hello volume');
    const big = await inject('GET', `/api/v1/volumes/${v.id}/files/download?path=${q('docs/2026/b.bin')}`);
    expect(big.rawPayload.equals(Buffer.alloc(70_000, 7))).toBe(true);
    const mk = await inject('POST', `/api/v1/volumes/${v.id}/files`, { payload: { directory: 'x/y/z' } });
    expect(mk.statusCode).toBe(201);
    expect(mk.json().created).toBe(3);
    const notEmpty = await inject('DELETE', `/api/v1/volumes/${v.id}/files?path=docs`);
    expect(notEmpty.statusCode).toBe(409);
    const rmr = await inject('DELETE', `/api/v1/volumes/${v.id}/files?path=docs&recursive=true`);
    expect(rmr.statusCode).toBe(204);
    const root = await inject('GET', `/api/v1/volumes/${v.id}/files`);
    expect(root.json().entries.map((e: { name: string }) => e.name)).toEqual(['x']);
    const stats = await inject('GET', `/api/v1/volumes/${v.id}/stats`);
    expect(stats.json()).toMatchObject({ sizeBytes: 0, directories: 3, files: 0, overQuota: false });
    const missing = await inject('GET', `/api/v1/volumes/${v.id}/files/download?path=nope.txt`);
    expect(missing.statusCode).toBe(404);
  });

  it('refuses a traversal corpus with 400 and touches nothing inside or outside the volume', async () => {
    const v = await createVolume({ name: 'corpus' });
    const dir = join(home, 'volumes', v.projectId, v.id);
    await writeFile(join(dir, 'inside.txt'), 'inside');
    await mkdir(join(dir, 'sub'));
    // Links the app itself could create: out of the volume, absolute and relative, and one to a dir inside.
    await symlink('/etc', join(dir, 'etc-link'));
    await symlink('../../..', join(dir, 'up-link'));
    await symlink(join(dir, 'sub'), join(dir, 'sub-link'));
    await writeFile(join(home, 'outside-secret.txt'), 'secret');
    const corpus = [
      '../outside-secret.txt',
      '../../outside-secret.txt',
      '/etc/passwd',
      '//etc/passwd',
      'sub/../../x',
      'sub/../inside.txt',
      '..',
      'sub/.',
      './inside.txt',
      'sub/./x',
      '%2e%2e/outside-secret.txt',
      '%2E%2E%2Foutside-secret.txt',
      '..%2foutside-secret.txt',
      '%252e%252e/outside-secret.txt',
      'sub%00.txt',
      'inside.txt\u0000.png',
      '..\\outside-secret.txt',
      'sub\\..\\..\\x',
      '\uff0e\uff0e/outside-secret.txt',
      'sub//x',
      'etc-link/passwd',
      'etc-link',
      'up-link/outside-secret.txt',
      'sub-link/x',
      'a\nb',
      `${'a'.repeat(256)}`,
      'x/'.repeat(2100),
    ];
    expect(corpus.length).toBeGreaterThanOrEqual(20);
    const before = await snapshotTree(join(home, 'volumes'));
    for (const p of corpus) {
      const calls = [
        inject('GET', `/api/v1/volumes/${v.id}/files?path=${q(p)}`),
        inject('GET', `/api/v1/volumes/${v.id}/files/download?path=${q(p)}`),
        inject('DELETE', `/api/v1/volumes/${v.id}/files?path=${q(p)}&recursive=true`),
        inject('POST', `/api/v1/volumes/${v.id}/files`, { payload: { directory: p } }),
        inject(
          'POST',
          `/api/v1/volumes/${v.id}/files?path=${q(p)}`,
          multipart([{ name: 'f.txt', body: 'x' }]),
        ),
      ];
      for (const r of await Promise.all(calls)) {
        expect(r.statusCode, `${p}: ${r.body}`).toBe(400);
      }
    }
    // Hostile file names in the upload itself.
    for (const name of ['../evil.txt', '..', '/abs.txt', 'a/b.txt', '%2e%2e', 'etc-link']) {
      const r = await inject('POST', `/api/v1/volumes/${v.id}/files`, multipart([{ name, body: 'x' }]));
      expect([400, 409], `${name}: ${r.body}`).toContain(r.statusCode);
    }
    expect(await snapshotTree(join(home, 'volumes'))).toEqual(before);
    expect(await readFile(join(home, 'outside-secret.txt'), 'utf8')).toBe('secret');
    expect(await readFile(join(home, 'outside-secret.txt'), 'utf8')).toBe('secret');
    expect(await readFile('/etc/hostname', 'utf8').catch(() => 'none')).toBeDefined();
  });

  it('enforces the quota on upload (413 with the numbers) and reports an app writing past it', async () => {
    const v = await createVolume({ name: 'small', maxSizeBytes: 1000 });
    const dir = join(home, 'volumes', v.projectId, v.id);
    const ok = await inject(
      'POST',
      `/api/v1/volumes/${v.id}/files`,
      multipart([{ name: 'a', body: Buffer.alloc(600) }]),
    );
    expect(ok.statusCode).toBe(201);
    const r = await inject(
      'POST',
      `/api/v1/volumes/${v.id}/files`,
      multipart([
        { name: 'b', body: Buffer.alloc(100) },
        { name: 'c', body: Buffer.alloc(500) },
      ]),
    );
    expect(r.statusCode).toBe(413);
    expect(r.json().error.code).toBe('MINIPAAS_ERR_VOLUME_QUOTA');
    expect(r.json().error.message).toMatch(/700 bytes used.*limit 1000 bytes/);
    // Refused as a whole: not even the first part is left, no temporary file either.
    expect((await readdir(dir)).sort()).toEqual(['a']);
    // Nor the directories it would have created.
    const deep = await inject(
      'POST',
      `/api/v1/volumes/${v.id}/files?path=${q('new/deeper')}`,
      multipart([{ name: 'c', body: Buffer.alloc(2000) }]),
    );
    expect(deep.statusCode).toBe(413);
    expect((await readdir(dir)).sort()).toEqual(['a']);
    // Replacing a file frees its bytes.
    const replace = await inject(
      'POST',
      `/api/v1/volumes/${v.id}/files`,
      multipart([{ name: 'a', body: Buffer.alloc(900) }]),
    );
    expect(replace.statusCode).toBe(201);
    // The app writes past the quota itself: stats say so.
    await writeFile(join(dir, 'by-app.bin'), Buffer.alloc(500));
    const stats = (await inject('GET', `/api/v1/volumes/${v.id}/stats`)).json();
    expect(stats).toMatchObject({ sizeBytes: 1400, maxSizeBytes: 1000, overQuota: true, usedPercent: 140 });
  });

  it('backs up and restores a tar.gz, refusing escaping entries, links out and bombs', async () => {
    const v = await createVolume({ name: 'keep', maxSizeBytes: 1024 * 1024 });
    const dir = join(home, 'volumes', v.projectId, v.id);
    await inject(
      'POST',
      `/api/v1/volumes/${v.id}/files?path=d`,
      multipart([{ name: 'one.txt', body: 'one' }]),
    );
    const backup = await inject('GET', `/api/v1/volumes/${v.id}/backup`);
    expect(backup.statusCode).toBe(200);
    expect(backup.headers['content-type']).toBe('application/gzip');
    await writeFile(join(dir, 'later.txt'), 'later');
    await rm(join(dir, 'd'), { recursive: true });
    const restore = await inject('POST', `/api/v1/volumes/${v.id}/restore`, {
      payload: backup.rawPayload,
      headers: { 'content-type': 'application/gzip' },
    });
    expect(restore.statusCode, restore.body).toBe(200);
    expect(await readFile(join(dir, 'd/one.txt'), 'utf8')).toBe('one');
    expect(await readdir(dir)).toEqual(['d']);
    const before = await snapshotTree(join(home, 'volumes'));
    const hostile = [
      rawTar([{ name: '../escape.txt', body: 'x' }]),
      rawTar([{ name: '/abs.txt', body: 'x' }]),
      rawTar([{ name: 'link', type: '2', linkname: '/etc/passwd' }]),
      rawTar([{ name: 'link', type: '2', linkname: '../../../x' }]),
      rawTar([{ name: 'hard', type: '1', linkname: '../../outside-secret.txt' }]),
      rawTar([{ name: 'dev', type: '3' }]),
    ];
    for (const t of hostile) {
      const r = await inject('POST', `/api/v1/volumes/${v.id}/restore`, {
        payload: t,
        headers: { 'content-type': 'application/gzip' },
      });
      expect(r.statusCode, r.body).toBe(400);
    }
    // A decompression bomb: 2 MiB of zeros over the 1 MiB quota, a few KiB compressed.
    const bombTar = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const src = join(home, 'bomb-src');
      void mkdir(src, { recursive: true })
        .then(() => writeFile(join(src, 'zeros'), Buffer.alloc(2 * 1024 * 1024)))
        .then(() => {
          const s = tarCreate({ cwd: src, portable: true }, ['zeros']) as unknown as NodeJS.ReadableStream;
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => resolve(Buffer.concat(chunks)));
          s.on('error', reject);
        });
    });
    await rm(join(home, 'bomb-src'), { recursive: true });
    const bomb = await inject('POST', `/api/v1/volumes/${v.id}/restore`, {
      payload: gzipSync(bombTar),
      headers: { 'content-type': 'application/gzip' },
    });
    expect(bomb.statusCode, bomb.body).toBe(413);
    expect(await snapshotTree(join(home, 'volumes'))).toEqual(before);
    expect(await readFile(join(home, 'outside-secret.txt'), 'utf8')).toBe('secret');
    expect(await readFile(join(home, 'outside-secret.txt'), 'utf8')).toBe('secret');
  });
});

describe('resources API', () => {
  it('shows defaults, sets and resets per-app limits, refuses bad input unchanged', async () => {
    expect((await inject('POST', '/api/v1/apps', { payload: { name: 'limited' } })).statusCode).toBe(201);
    const base = '/api/v1/apps/limited/resources';
    expect((await inject('GET', base)).json()).toMatchObject({
      memoryMb: 512,
      cpuMillicores: 1000,
      restartPolicy: 'always',
      source: { memoryMb: 'default', cpuMillicores: 'default', restartPolicy: 'default' },
    });
    for (const bad of [
      {},
      { memoryMb: 2 },
      { memoryMb: 1.5 },
      { cpuMillicores: 0 },
      { restartPolicy: 'sometimes' },
      { memoryMb: '64' },
      { extra: true },
    ]) {
      const r = await inject('PATCH', base, { payload: bad });
      expect(r.statusCode, JSON.stringify(bad)).toBe(400);
    }
    const proto = await inject('PATCH', base, {
      payload: '{"__proto__":{"memoryMb":64}}',
      headers: { 'content-type': 'application/json' },
    });
    expect(proto.statusCode).toBe(400);
    expect((await inject('GET', base)).json().source.memoryMb).toBe('default');
    const set = await inject('PATCH', base, {
      payload: { memoryMb: 64, cpuMillicores: 250, restartPolicy: 'no' },
    });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json()).toMatchObject({ memoryMb: 64, cpuMillicores: 250, restartPolicy: 'no' });
    const reset = await inject('PATCH', base, { payload: { memoryMb: null } });
    expect(reset.json()).toMatchObject({
      memoryMb: 512,
      cpuMillicores: 250,
      source: { memoryMb: 'default' },
    });
    const metrics = await inject('GET', '/api/v1/apps/limited/metrics');
    expect(metrics.json()).toMatchObject({
      app: 'limited',
      runtime: 'process',
      supported: true,
      instances: [],
    });
  });

  it('deletes the volumes attached to a deleted app, data included', async () => {
    expect((await inject('POST', '/api/v1/apps', { payload: { name: 'shortlived' } })).statusCode).toBe(201);
    const v = await createVolume({ name: 'attached', app: 'shortlived' });
    const dir = join(home, 'volumes', v.projectId, v.id);
    expect((await lstat(dir)).isDirectory()).toBe(true);
    const del = await inject('DELETE', '/api/v1/apps/shortlived');
    expect(del.statusCode, del.body).toBeLessThan(300);
    await expect(lstat(dir)).rejects.toThrow();
    expect((await inject('GET', `/api/v1/volumes/${v.id}`)).statusCode).toBe(404);
  });
});

describe('volumes in a deployed app (process runtime)', () => {
  it('the app sees uploads at MINIPAAS_VOLUME_<NAME>, and they survive a redeploy', async () => {
    const created = await inject('POST', '/api/v1/apps', { payload: { name: 'volapp' } });
    expect(created.statusCode, created.body).toBe(201);
    const v = await createVolume({ name: 'store', app: 'volapp' });
    const up = await inject(
      'POST',
      `/api/v1/volumes/${v.id}/files`,
      multipart([{ name: 'greeting.txt', body: 'hi from the API' }]),
    );
    expect(up.statusCode).toBe(201);
    const src = await mkdtemp(join(tmpdir(), 'mp-volapp-'));
    await writeFile(
      join(src, 'server.js'),
      `const http = require('node:http'); const fs = require('node:fs'); const path = require('node:path');
const dir = process.env.MINIPAAS_VOLUME_STORE;
http.createServer((req, res) => {
  if (req.url === '/write') { fs.writeFileSync(path.join(dir, 'from-app.txt'), 'written by ' + process.env.MINIPAAS_RELEASE); return res.end('ok'); }
  let body = dir + '\\n';
  for (const f of ['greeting.txt', 'from-app.txt']) { try { body += f + '=' + fs.readFileSync(path.join(dir, f), 'utf8') + '\\n'; } catch { body += f + '=missing\\n'; } }
  try { body += 'relative=' + fs.readFileSync('store/greeting.txt', 'utf8') + '\\n'; } catch (e) { body += 'relative=' + e.code + '\\n'; }
  res.end(body);
}).listen(process.env.PORT);
`,
    );
    await writeFile(join(src, 'Procfile'), 'web: node server.js\n');
    const deploy = async () => {
      const chunks: Buffer[] = [];
      for await (const c of tarCreate({ gzip: true, cwd: src, portable: true }, [
        '.',
      ]) as AsyncIterable<Buffer>)
        chunks.push(c);
      const r = await inject('POST', '/api/v1/apps/volapp/deploy', {
        payload: Buffer.concat(chunks),
        headers: { 'content-type': 'application/gzip' },
      });
      expect(r.statusCode, r.body).toBe(202);
      const d = await waitDeployment(r.json().id);
      expect(d.status, JSON.stringify(d)).toBe('running');
    };
    const get = async (path: string) => {
      const state = await agent.supervisor.get('volapp');
      const port = state?.instances.find((i) => i.status === 'running')?.port;
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return res.text();
    };
    await deploy();
    let body = await get('/');
    expect(body).toContain(join(home, 'volumes', v.projectId, v.id));
    expect(body).toContain('greeting.txt=hi from the API');
    // The mount path /app/store is also ./store in the release directory (the instance's cwd).
    expect(body).toContain('relative=hi from the API');
    expect(await get('/write')).toBe('ok');
    await deploy();
    body = await get('/');
    expect(body).toContain('greeting.txt=hi from the API');
    expect(body).toContain('from-app.txt=written by v1');
    // The file the app wrote is visible through the API too.
    const dl = await inject('GET', `/api/v1/volumes/${v.id}/files/download?path=from-app.txt`);
    expect(dl.body).toBe('written by v1');
    await rm(src, { recursive: true, force: true });
  }, 120_000);
});
