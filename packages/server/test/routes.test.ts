/**
 * HTTP routes in-process (`app.inject`) against a real node agent started in-process on a temp
 * MINIPAAS_HOME, with the store on the home's embedded PostgreSQL server and on an external server
 * (DATABASE_URL).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig, type MinipaasConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { c as tarCreate } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testPostgresUrl } from '../../../test/helpers/postgres.ts';
import { freePort, startHomePostgres } from '../../../test/helpers/postgres-server.ts';
import { rawTar } from '../../../test/helpers/tarball.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let config: MinipaasConfig;
let agent: AgentHandle;
let cp: ControlPlane;
let auth: { authorization: string };

async function gzipDir(dir: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const stream = tarCreate({ gzip: true, cwd: dir, portable: true }, ['.']);
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function waitDeployment(id: string): Promise<DeploymentView> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const r = await cp.app.inject({ method: 'GET', url: `/api/v1/deployments/${id}`, headers: auth });
    const d = r.json<DeploymentView>();
    if (['running', 'failed', 'stopped'].includes(d.status)) return d;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('deployment did not finish');
}

type Backend = {
  name: string;
  open(home: string): Promise<{ databaseUrl?: string; drop(): Promise<void> }>;
};
const backends: Backend[] = [
  {
    name: 'the embedded server',
    async open(home) {
      const pg = await startHomePostgres(home);
      return { drop: () => pg.stop() };
    },
  },
];
if (testPostgresUrl() || process.env.CI) {
  backends.push({
    name: 'an external server',
    async open() {
      const db = await createTestDatabase('routes');
      return { databaseUrl: db.url, drop: () => db.drop() };
    },
  });
}

describe.each(backends)('API on $name', (backend) => {
  let dropDb: () => Promise<void> = async () => {};
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'mp-routes-'));
    const portMin = 21000 + Math.floor(Math.random() * 80) * 100;
    config = await loadConfig({
      MINIPAAS_HOME: home,
      MINIPAAS_APP_PORT_MIN: String(portMin),
      MINIPAAS_APP_PORT_MAX: String(portMin + 99),
      MINIPAAS_ROUTER_PORT: String(await freePort()),
      MINIPAAS_MAX_UPLOAD_BYTES: String(64 * 1024),
      MINIPAAS_STOP_GRACE_MS: '2000',
      MINIPAAS_LOG_LEVEL: 'silent',
    });
    const logger = pino({ level: 'silent' });
    agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
    const store = await backend.open(home);
    dropDb = store.drop;
    cp = await createControlPlane({
      config: store.databaseUrl ? { ...config, databaseUrl: store.databaseUrl } : config,
      drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
      logger,
      reconcile: false,
    });
    auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  }, 60_000);

  afterAll(async () => {
    await cp?.close();
    await agent?.close();
    await dropDb();
    await rm(home, { recursive: true, force: true });
  });

  describe('health', () => {
    it('answers without a token and checks db and agent', async () => {
      expect((await cp.app.inject('/health')).json()).toMatchObject({ status: 'ok' });
      expect((await cp.app.inject('/health/live')).statusCode).toBe(200);
      const ready = await cp.app.inject('/health/ready');
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({ status: 'ready', checks: { db: 'ok', agent: 'ok' } });
    });
  });

  describe('auth', () => {
    it('requires a bearer token on every /api/v1 route', async () => {
      for (const url of ['/api/v1/apps', '/api/v1/projects', '/api/v1/status', '/api/v1/apps/x/logs']) {
        const r = await cp.app.inject({ method: 'GET', url });
        expect(r.statusCode).toBe(401);
        expect(r.json().error.code).toBe('MINIPAAS_ERR_UNAUTHENTICATED');
      }
      const wrong = await cp.app.inject({
        method: 'GET',
        url: '/api/v1/apps',
        headers: { authorization: 'Basic abc' },
      });
      expect(wrong.json().error.message).toMatch(/Bearer/);
      const me = await cp.app.inject({ method: 'GET', url: '/api/v1/whoami', headers: auth });
      expect(me.json()).toMatchObject({ token: { name: 'admin', role: 'owner' } });
    });
  });

  describe('projects and services (seed shapes)', () => {
    it('creates a project, a service in it, scales it, and refuses deleting a non-empty project', async () => {
      const p = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/projects',
        headers: auth,
        payload: { name: 'My App', slug: 'my-app' },
      });
      expect(p.statusCode).toBe(201);
      const project = p.json<{ id: string; slug: string }>();
      expect(project.slug).toBe('my-app');
      const list = await cp.app.inject({ method: 'GET', url: '/api/v1/projects', headers: auth });
      expect(list.json().projects.map((x: { slug: string }) => x.slug)).toEqual(['default', 'my-app']);
      const s = await cp.app.inject({
        method: 'POST',
        url: `/api/v1/projects/${project.id}/services`,
        headers: auth,
        payload: {
          name: 'API Server',
          slug: 'api-server',
          type: 'webapp',
          build_source: { type: 'git', repository: 'https://example.invalid/r', branch: 'main' },
          ports: [{ name: 'http', port: 8080, public: true }],
        },
      });
      expect(s.statusCode).toBe(201);
      const svc = s.json<{ id: string; name: string; projectId: string }>();
      expect(svc).toMatchObject({ name: 'api-server', projectId: project.id });
      const scaled = await cp.app.inject({
        method: 'POST',
        url: `/api/v1/services/${svc.id}/scale`,
        headers: auth,
        payload: { replicas: 3 },
      });
      expect(scaled.statusCode).toBe(200);
      expect(scaled.json().processes.web.instances).toBe(3);
      const svcs = await cp.app.inject({
        method: 'GET',
        url: '/api/v1/projects/my-app/services',
        headers: auth,
      });
      expect(svcs.json().services).toHaveLength(1);
      const del = await cp.app.inject({
        method: 'DELETE',
        url: `/api/v1/projects/${project.id}`,
        headers: auth,
      });
      expect(del.statusCode).toBe(409);
      expect(
        (await cp.app.inject({ method: 'DELETE', url: '/api/v1/apps/api-server', headers: auth })).statusCode,
      ).toBe(204);
      expect(
        (await cp.app.inject({ method: 'DELETE', url: `/api/v1/projects/${project.id}`, headers: auth }))
          .statusCode,
      ).toBe(204);
      expect(
        (await cp.app.inject({ method: 'GET', url: '/api/v1/projects/nope', headers: auth })).statusCode,
      ).toBe(404);
    });
  });

  describe('bad input', () => {
    it.each([
      [{ name: 'Bad_Name' }, /app name/],
      [{ name: '-x' }, /app name/],
      [{ name: 'a'.repeat(41) }, /app name/],
      [{ name: 'ok', env: { 'BAD KEY': 'x' } }, /env var names/],
      [{ name: 'ok', surprise: 1 }, /surprise|Unrecognized/i],
      [{}, /name is required/],
    ])('POST /api/v1/apps %j -> 400', async (payload, re) => {
      const r = await cp.app.inject({ method: 'POST', url: '/api/v1/apps', headers: auth, payload });
      expect(r.statusCode).toBe(400);
      expect(r.json().error.message).toMatch(re);
    });

    it('malformed JSON, wrong content type, duplicates, unknown ids, bad scale', async () => {
      const bad = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps',
        headers: { ...auth, 'content-type': 'application/json' },
        payload: '{"name":',
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.code).toBe('MINIPAAS_ERR_BAD_JSON');
      const xml = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps',
        headers: { ...auth, 'content-type': 'application/xml' },
        payload: '<a/>',
      });
      expect(xml.statusCode).toBe(415);
      expect(
        (
          await cp.app.inject({
            method: 'POST',
            url: '/api/v1/apps',
            headers: auth,
            payload: { name: 'dup' },
          })
        ).statusCode,
      ).toBe(201);
      const dup = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps',
        headers: auth,
        payload: { name: 'dup' },
      });
      expect(dup.statusCode).toBe(409);
      for (const url of [
        '/api/v1/apps/nope',
        '/api/v1/apps/nope/instances',
        '/api/v1/apps/nope/logs',
        '/api/v1/deployments/nope',
        '/api/v1/deployments/00000000-0000-4000-8000-000000000000',
      ]) {
        const r = await cp.app.inject({ method: 'GET', url, headers: auth });
        expect(r.statusCode, url).toBe(404);
      }
      const scale = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps/dup/scale',
        headers: auth,
        payload: { replicas: -1 },
      });
      expect(scale.statusCode).toBe(400);
      const tail = await cp.app.inject({
        method: 'GET',
        url: '/api/v1/apps/dup/logs?tail=abc',
        headers: auth,
      });
      expect(tail.statusCode).toBe(400);
      const restart = await cp.app.inject({ method: 'POST', url: '/api/v1/apps/dup/restart', headers: auth });
      expect(restart.statusCode).toBe(409);
      expect(
        (await cp.app.inject({ method: 'GET', url: '/api/v1/nothing-here', headers: auth })).statusCode,
      ).toBe(404);
    });

    it('refuses hostile or broken uploads with a 4xx and writes nothing outside the release', async () => {
      const up = (payload: Buffer, type = 'application/gzip') =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps/dup/deploy',
          headers: { ...auth, 'content-type': type },
          payload,
        });
      const traversal = await up(rawTar([{ name: '../../escape.txt', body: 'pwned' }]));
      expect(traversal.statusCode).toBe(400);
      expect(traversal.json().error.message).toMatch(/path traversal/);
      const abs = await up(rawTar([{ name: '/tmp/escape.txt', body: 'pwned' }]));
      expect(abs.statusCode).toBe(400);
      const garbage = await up(Buffer.from('not a tarball at all'));
      expect(garbage.statusCode).toBe(400);
      const big = await up(Buffer.alloc(70 * 1024, 1));
      expect(big.statusCode).toBe(413);
      const nostack = await up(rawTar([{ name: 'README.md', body: 'hi' }]));
      expect(nostack.statusCode).toBe(422);
      expect(nostack.json().error.message).toMatch(/Procfile/);
      const nothing = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps/dup/deploy',
        headers: auth,
        payload: {},
      });
      expect(nothing.statusCode).toBe(400);
      const deps = await cp.app.inject({ method: 'GET', url: '/api/v1/apps/dup/deployments', headers: auth });
      expect(deps.json().deployments).toHaveLength(0);
    });
  });

  describe('deploy from an upload', () => {
    it('builds a release, runs it, lists instances and logs, and deletes it', async () => {
      const archive = await gzipDir(join(import.meta.dirname, '..', '..', '..', 'examples', 'static-site'));
      await cp.app.inject({ method: 'POST', url: '/api/v1/apps', headers: auth, payload: { name: 'site' } });
      const r = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps/site/deploy?message=first',
        headers: { ...auth, 'content-type': 'application/gzip' },
        payload: archive,
      });
      expect(r.statusCode).toBe(202);
      const d = await waitDeployment(r.json<DeploymentView>().id);
      expect(d.status, d.log.join('\n')).toBe('running');
      expect(d.release).toBe(1);
      expect(d.message).toBe('first');
      expect(d.log.join('\n')).toContain('Detected stack: static');
      const app = (await cp.app.inject({ method: 'GET', url: '/api/v1/apps/site', headers: auth })).json();
      expect(app).toMatchObject({ status: 'running', currentRelease: 1 });
      const inst = (
        await cp.app.inject({ method: 'GET', url: '/api/v1/apps/site/instances', headers: auth })
      ).json().instances;
      expect(inst).toHaveLength(1);
      expect(inst[0]).toMatchObject({ processType: 'web', status: 'running' });
      const res = await fetch(`http://127.0.0.1:${agent.router?.port}/apps/site/`);
      expect(await res.text()).toContain('Static site on MiniPaaS');
      const logs = (
        await cp.app.inject({ method: 'GET', url: '/api/v1/apps/site/logs?tail=10', headers: auth })
      ).json();
      expect(logs.lines.map((l: { line: string }) => l.line).join('\n')).toContain('listening on port');
      const log = (
        await cp.app.inject({ method: 'GET', url: `/api/v1/deployments/${d.id}/log`, headers: auth })
      ).json();
      expect(log.status).toBe('running');
      // a second deploy supersedes the first: the old deployment is stopped, the new one running
      const r2 = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps/site/deploy',
        headers: { ...auth, 'content-type': 'application/gzip' },
        payload: archive,
      });
      const d2 = await waitDeployment(r2.json<DeploymentView>().id);
      expect(d2).toMatchObject({ status: 'running', release: 2 });
      const list = (
        await cp.app.inject({ method: 'GET', url: '/api/v1/apps/site/deployments', headers: auth })
      ).json().deployments;
      expect(list.map((x: DeploymentView) => [x.release, x.status])).toEqual([
        [2, 'running'],
        [1, 'stopped'],
      ]);
      const stopped = await cp.app.inject({
        method: 'PATCH',
        url: '/api/v1/apps/site',
        headers: auth,
        payload: { status: 'stopped' },
      });
      expect(stopped.json().status).toBe('stopped');
      expect(
        (await cp.app.inject({ method: 'GET', url: `/api/v1/deployments/${d2.id}`, headers: auth })).json()
          .status,
      ).toBe('stopped');
      expect(
        (await cp.app.inject({ method: 'GET', url: '/api/v1/apps/site/instances', headers: auth })).json()
          .instances,
      ).toEqual([]);
      expect(
        (await cp.app.inject({ method: 'DELETE', url: '/api/v1/apps/site', headers: auth })).statusCode,
      ).toBe(204);
      expect(await agent.supervisor.get?.('site')).toBeFalsy();
    });

    it('runs an uploaded directory with an explicit command when nothing is detected', async () => {
      await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps',
        headers: auth,
        payload: { name: 'withcmd' },
      });
      const archive = rawTar([
        {
          name: 'app.js',
          body: "require('http').createServer((q,s)=>s.end('explicit-'+process.env.GREETING)).listen(process.env.PORT)",
        },
      ]);
      await cp.app.inject({
        method: 'PATCH',
        url: '/api/v1/apps/withcmd',
        headers: auth,
        payload: { env: { GREETING: 'hi' } },
      });
      const r = await cp.app.inject({
        method: 'POST',
        url: `/api/v1/apps/withcmd/deploy?command=${encodeURIComponent('node app.js')}`,
        headers: { ...auth, 'content-type': 'application/gzip' },
        payload: archive,
      });
      expect(r.statusCode, r.body).toBe(202);
      const d = await waitDeployment(r.json<DeploymentView>().id);
      expect(d.status, d.log.join('\n')).toBe('running');
      const res = await fetch(`http://127.0.0.1:${agent.router?.port}/apps/withcmd/`);
      expect(await res.text()).toBe('explicit-hi');
    });

    it('installs dependencies with npm ci, as the app user and without the platform environment', async () => {
      process.env.MINIPAAS_SECRET_PROBE = 'platform-secret';
      const dir = await mkdtemp(join(tmpdir(), 'mp-npm-'));
      const { mkdir, writeFile } = await import('node:fs/promises');
      await mkdir(join(dir, 'vendor', 'greeter'), { recursive: true });
      await writeFile(
        join(dir, 'vendor', 'greeter', 'package.json'),
        JSON.stringify({ name: 'greeter', version: '1.0.0', main: 'index.js' }),
      );
      await writeFile(join(dir, 'vendor', 'greeter', 'index.js'), "module.exports = (n) => 'hello ' + n;");
      await writeFile(
        join(dir, 'package.json'),
        JSON.stringify({
          name: 'withdeps',
          version: '1.0.0',
          scripts: { start: 'node server.js', postinstall: 'node build.js' },
          dependencies: { greeter: 'file:./vendor/greeter' },
        }),
      );
      await writeFile(
        join(dir, 'server.js'),
        "const g = require('greeter'); const by = require('fs').readFileSync('built-by', 'utf8'); require('http').createServer((q,s)=>s.end(g('deps') + ' built-by ' + by)).listen(process.env.PORT);",
      );
      // the install script records who ran it and whether it could see the platform's environment
      await writeFile(
        join(dir, 'build.js'),
        "require('fs').writeFileSync('built-by', process.getuid() + ' leak=' + (process.env.MINIPAAS_SECRET_PROBE ?? 'none'));",
      );
      const { execFile } = await import('node:child_process');
      await new Promise<void>((res, rej) =>
        execFile('npm', ['install', '--package-lock-only', '--no-audit', '--no-fund'], { cwd: dir }, (err) =>
          err ? rej(err) : res(),
        ),
      );
      await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps',
        headers: auth,
        payload: { name: 'withdeps' },
      });
      const r = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps/withdeps/deploy',
        headers: { ...auth, 'content-type': 'application/gzip' },
        payload: await gzipDir(dir),
      });
      expect(r.statusCode, r.body).toBe(202);
      const d = await waitDeployment(r.json<DeploymentView>().id);
      expect(d.log.join('\n')).toContain('Installing dependencies: npm ci');
      expect(d.status, d.log.join('\n')).toBe('running');
      const res = await fetch(`http://127.0.0.1:${agent.router?.port}/apps/withdeps/`);
      // as root, the install ran as the app's own uid: the one its instance runs as (never root)
      const pid = agent.supervisor.get('withdeps')?.instances[0]?.pid;
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const appUid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      if (process.getuid?.() === 0) expect(appUid).toBeGreaterThanOrEqual(1000);
      expect(await res.text()).toBe(`hello deps built-by ${appUid} leak=none`);
      await rm(dir, { recursive: true, force: true });
      delete process.env.MINIPAAS_SECRET_PROBE;
    });
  });
});
