/**
 * A Heroku/Dokku-style app we did not shape for MiniPaaS (Procfile with comments, web + worker + release +
 * a one-shot type, app.json with formation, a content health check, predeploy and postdeploy, no lockfile),
 * on a real Postgres database, a real agent and real processes: the release phase runs before the switch,
 * only the formation's types run, a failing content check keeps the previous release serving, and a
 * rollback restores old code and env without a build.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routerGet, waitFor } from '../../../test/helpers/platform.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { rawTar } from '../../../test/helpers/tarball.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let agent: AgentHandle;
let cp: ControlPlane;
let dropDb: () => Promise<void> = async () => {};
let auth: { authorization: string };

const PROCFILE = `# Procfile of a typical Heroku app
web: NODE_ENV=production node web.js

# background jobs
worker: node -e "setInterval(() => {}, 1000)"
release: node -e "console.log('release phase ran')"
# a one-shot maintenance task, run by hand with scale
custom: node -e "console.log('one-off done')"
`;

function source(mark: string, page: string): Buffer {
  const appJson = {
    name: 'sample',
    scripts: { dokku: { predeploy: 'echo predeploy ran', postdeploy: 'echo postdeploy ran' } },
    formation: { web: { quantity: 1 }, worker: { quantity: 1 } },
    env: {
      SESSION_SECRET: { generator: 'secret' },
      LOG_STYLE: { value: 'plain' },
      REQUIRED_SETTING: { required: true },
    },
    healthchecks: { web: [{ type: 'startup', path: '/', content: 'sample-ok', attempts: 3, wait: 1 }] },
  };
  const web = `require('http').createServer((q, s) => s.end(${JSON.stringify(page)} + ' ' + process.env.MARK + ' ' + (process.env.GREETING || '-'))).listen(process.env.PORT);`;
  return rawTar([
    { name: 'Procfile', body: PROCFILE },
    { name: 'app.json', body: JSON.stringify(appJson) },
    { name: 'web.js', body: web.replace('process.env.MARK', JSON.stringify(mark)) },
  ]);
}

async function api<T>(method: 'GET' | 'POST' | 'PATCH' | 'PUT', url: string, payload?: object) {
  const r = await cp.app.inject({
    method,
    url,
    headers: auth,
    ...(payload ? { payload: payload as never } : {}),
  });
  return { status: r.statusCode, body: r.json<T>() };
}

async function deploy(mark: string, page: string): Promise<DeploymentView> {
  const r = await cp.app.inject({
    method: 'POST',
    url: '/api/v1/apps/sample/deploy',
    headers: { ...auth, 'content-type': 'application/gzip' },
    payload: source(mark, page),
  });
  expect(r.statusCode, r.body).toBe(202);
  return finished(r.json<DeploymentView>().id);
}

const finished = (id: string) =>
  waitFor(
    `deployment ${id} to finish`,
    async () => {
      const d = (await api<DeploymentView>('GET', `/api/v1/deployments/${id}`)).body;
      return ['running', 'failed', 'cancelled'].includes(d.status) ? d : null;
    },
    90_000,
  );

const page = async () =>
  (await routerGet(agent.router?.port ?? 0, '/', `sample.${cp.ctx.config.router.baseDomain}`)).body;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-heroku-'));
  const portMin = 24000 + Math.floor(Math.random() * 80) * 100;
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_APP_PORT_MIN: String(portMin),
    MINIPAAS_APP_PORT_MAX: String(portMin + 99),
    MINIPAAS_ROUTER_PORT: String(await freePort()),
    MINIPAAS_STOP_GRACE_MS: '1000',
    MINIPAAS_START_TIMEOUT_MS: '20000',
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  const logger = pino({ level: 'silent' });
  agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: config.router.port } });
  const db = await createTestDatabase('heroku');
  dropDb = db.drop;
  cp = await createControlPlane({
    config: { ...config, databaseUrl: db.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
    reconcile: false,
  });
  auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  expect((await api('POST', '/api/v1/apps', { name: 'sample' })).status).toBe(201);
}, 60_000);

type AppEnv = { env: Record<string, string> };

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await dropDb();
  await rm(home, { recursive: true, force: true });
});

describe('a Heroku-style app with a Procfile and app.json', () => {
  it('refuses to deploy while a required app.json env var is unset, naming it', async () => {
    const d = await deploy('v0', 'sample-ok');
    expect(d.status).toBe('failed');
    expect(d.error).toMatch(/REQUIRED_SETTING/);
    expect(
      (await api('PATCH', '/api/v1/apps/sample', { env: { REQUIRED_SETTING: 'set' } })).status,
    ).toBeLessThan(300);
  });

  it('runs the release phase and predeploy before the switch, and only the formation’s types', async () => {
    const d = await deploy('v1', 'sample-ok');
    const log = d.log.join('\n');
    expect(d.status, log).toBe('running');
    expect(log).toContain('release phase ran');
    expect(log).toContain('predeploy ran');
    expect(log.indexOf('predeploy ran')).toBeLessThan(log.indexOf('is live'));
    expect(log).toContain('postdeploy ran');
    expect(await page()).toBe('sample-ok v1 -');
    const view = (await api<AppEnv & { secrets: string[] }>('GET', '/api/v1/apps/sample')).body;
    expect(view.env.LOG_STYLE).toBe('plain');
    // a generated secret is stored as a secret: masked unless revealed
    expect(view.env.SESSION_SECRET).toBe('••••');
    expect(view.secrets).toEqual(['SESSION_SECRET']);
    const env = (await api<AppEnv>('GET', '/api/v1/apps/sample?reveal=true')).body.env;
    expect(env.SESSION_SECRET).toMatch(/^[0-9a-f]{64}$/);
    const ps = (
      await api<{ instances: Array<{ processType: string; status: string }> }>(
        'GET',
        '/api/v1/apps/sample/instances',
      )
    ).body;
    const types = ps.instances
      .filter((i) => i.status === 'running')
      .map((i) => i.processType)
      .sort();
    expect(types).toEqual(['web', 'worker']);
  });

  it('fails a release whose page lacks the health check content; the previous release keeps serving', async () => {
    const d = await deploy('v2', 'broken page');
    expect(d.status).toBe('failed');
    expect(d.error).toMatch(/does not contain "sample-ok"/);
    expect(await page()).toBe('sample-ok v1 -');
  });

  it('rolls back to v1 after v3 with v1’s code and env, without a build', async () => {
    expect(
      (await api('PATCH', '/api/v1/apps/sample', { env: { GREETING: 'hello-v3' } })).status,
    ).toBeLessThan(300);
    const v3 = await deploy('v3', 'sample-ok');
    expect(v3.status, v3.error ?? '').toBe('running');
    expect(await page()).toBe('sample-ok v3 hello-v3');
    const releases = (
      await api<{ releases: Array<{ version: number; canRollback: boolean }> }>(
        'GET',
        '/api/v1/apps/sample/releases',
      )
    ).body.releases;
    expect(releases.find((r) => r.version === 1)?.canRollback).toBe(true);
    expect(releases.find((r) => r.version === 2)?.canRollback).toBe(false);

    // a request loop through the router during the rollback sees no failure
    let loop = true;
    const failures: string[] = [];
    let served = 0;
    const looping = (async () => {
      while (loop) {
        const body = await page().catch((err: Error) => `error ${err.message}`);
        if (body.startsWith('sample-ok v1') || body.startsWith('sample-ok v3')) served++;
        else failures.push(body);
      }
    })();
    const r = await api<DeploymentView>('POST', '/api/v1/apps/sample/rollback', { release: 1 });
    expect(r.status).toBe(202);
    const d = await finished(r.body.id);
    loop = false;
    await looping;
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(10);
    expect(d.status, d.error ?? '').toBe('running');
    expect(d.log.join('\n')).not.toContain('Installing');
    expect(await page()).toBe('sample-ok v1 -');
    const env = (await api<{ env: Record<string, string> }>('GET', '/api/v1/apps/sample')).body.env;
    expect(env.GREETING).toBeUndefined();

    const bad = await api('POST', '/api/v1/apps/sample/rollback', { release: 2 });
    expect(bad.status).toBe(409);
    const none = await api('POST', '/api/v1/apps/sample/rollback', { release: 99 });
    expect(none.status).toBe(404);
  });
});
