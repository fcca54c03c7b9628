/**
 * The durable build queue against a real PostgreSQL server (a fresh database), a real node agent and real
 * builds (npm running the app's install script as its user): one build at a time with
 * builds.maxConcurrent=1 and positions 1..4 for five apps deployed at once, cancel of a queued and of a
 * running build (its process tree is killed, the previous release keeps serving), coalescing of quick
 * redeploys, live log following with the queue position, and seed 002's rebuild route.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGates, type Gates } from '../../../test/helpers/gated-app.ts';
import { waitFor } from '../../../test/helpers/platform.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let agent: AgentHandle;
let cp: ControlPlane;
let gates: Gates;
let dropDb: () => Promise<void> = async () => {};
let auth: { authorization: string };
/** An app of the first test that went live (the second one redeploys it). */
let liveApp = '';

async function api<T>(
  method: 'GET' | 'POST',
  url: string,
  payload?: Record<string, unknown>,
): Promise<{ status: number; body: T }> {
  const r = await cp.app.inject({
    method,
    url,
    headers: auth,
    ...(payload !== undefined ? { payload: payload as Record<string, string> } : {}),
  });
  return { status: r.statusCode, body: r.json<T>() };
}

async function deployGated(app: string, label: string): Promise<DeploymentView> {
  const r = await cp.app.inject({
    method: 'POST',
    url: `/api/v1/apps/${app}/deploy`,
    headers: { ...auth, 'content-type': 'application/gzip' },
    payload: gates.app(label),
  });
  expect(r.statusCode, r.body).toBe(202);
  return r.json<DeploymentView>();
}

const get = async (id: string) => (await api<DeploymentView>('GET', `/api/v1/deployments/${id}`)).body;
const until = (id: string, statuses: string[]) =>
  waitFor(
    `deployment ${id} to be ${statuses.join('|')}`,
    async () => {
      const d = await get(id);
      return statuses.includes(d.status) ? d : null;
    },
    90_000,
  );
const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-queue-'));
  gates = await createGates();
  const portMin = 23000 + Math.floor(Math.random() * 80) * 100;
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_APP_PORT_MIN: String(portMin),
    MINIPAAS_APP_PORT_MAX: String(portMin + 99),
    MINIPAAS_ROUTER_PORT: String(await freePort()),
    MINIPAAS_BUILDS_MAX_CONCURRENT: '1',
    MINIPAAS_STOP_GRACE_MS: '1000',
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  const logger = pino({ level: 'silent' });
  agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
  const db = await createTestDatabase('queue');
  dropDb = db.drop;
  cp = await createControlPlane({
    config: { ...config, databaseUrl: db.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
    reconcile: false,
  });
  auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  for (const name of ['qa', 'qb', 'qc', 'qd', 'qe', 'qf', 'qg', 'qh'])
    expect((await api('POST', '/api/v1/apps', { name })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  // Whatever still waits is let go, so no build outlives the test.
  for (const l of ['a1', 'b1', 'c1', 'd1', 'e1', 'a2', 'f1', 'f2', 'f3', 'f4', 'g1', 'h1'])
    await gates?.open(l);
  await cp?.close();
  await agent?.close();
  await dropDb();
  await gates?.close();
  await rm(home, { recursive: true, force: true });
});

describe('build queue (maxConcurrent=1)', () => {
  it('builds five apps deployed at once one at a time, showing positions 1..4, and cancels a queued one', async () => {
    const labels = ['a1', 'b1', 'c1', 'd1', 'e1'];
    const apps = ['qa', 'qb', 'qc', 'qd', 'qe'];
    const started = await Promise.all(apps.map((a, i) => deployGated(a, labels[i] as string)));
    const byId = new Map(started.map((d, i) => [d.id, labels[i] as string]));
    // Exactly one builds; the four others wait with positions 1..4.
    const first = await waitFor('one build to start', async () => {
      const all = await Promise.all(started.map((d) => get(d.id)));
      return all.find((d) => d.status === 'building') ?? null;
    });
    await waitFor(
      'its install script',
      async () => gates.started(byId.get(first.id) as string),
      15_000,
    ).catch(async (e) => {
      throw new Error(
        `${e.message}: ${JSON.stringify(await Promise.all(started.map((d) => get(d.id))), null, 1)}`,
      );
    });
    const all = await Promise.all(started.map((d) => get(d.id)));
    expect(all.filter((d) => d.status === 'building')).toHaveLength(1);
    expect(
      all
        .filter((d) => d.status === 'queued')
        .map((d) => d.position)
        .sort(),
    ).toEqual([1, 2, 3, 4]);
    expect(first.position).toBeNull();
    liveApp = first.appName;
    const queuedList = (await api<{ builds: DeploymentView[] }>('GET', '/api/v1/apps/qe/builds')).body.builds;
    expect(queuedList).toHaveLength(1);
    expect(queuedList[0]?.status).toMatch(/queued|building/);

    // Follow the last in line live: it sees its position, then its log, then its end.
    const last = all.find((d) => d.position === 4) as DeploymentView;
    const follow = cp.app.inject({
      method: 'GET',
      url: `/api/v1/deployments/${last.id}/log?follow=true`,
      headers: auth,
    });

    // Cancel one that waits (not the last): it is cancelled at once and never builds.
    const victim = all.find((d) => d.position === 2) as DeploymentView;
    const c = await api<DeploymentView>('POST', `/api/v1/deployments/${victim.id}/cancel`);
    expect(c.status).toBe(200);
    expect(c.body.status).toBe('cancelled');
    expect((await get(last.id)).position).toBe(3);

    // Let them through in queue order; never two at once.
    const order = all
      .filter((d) => d.status === 'queued' && d.id !== victim.id)
      .sort((x, y) => (x.position ?? 0) - (y.position ?? 0));
    for (const d of [first, ...order]) {
      await until(d.id, ['building']);
      const now = await Promise.all(started.map((s) => get(s.id)));
      expect(now.filter((s) => s.status === 'building' || s.status === 'deploying')).toHaveLength(1);
      await gates.open(byId.get(d.id) as string);
      const done = await until(d.id, ['running', 'failed']);
      expect(done.status, done.log.join('\n')).toBe('running');
    }
    expect(gates.started(byId.get(victim.id) as string)).toBe(false);
    expect((await get(victim.id)).status).toBe('cancelled');

    const sse = (await follow).body;
    // (the follower may start after the cancel: it sees 4 or 3 first), then the position goes down to 1
    expect(sse).toMatch(/event: status\ndata: \{"status":"queued","position":[34]\}/);
    expect(sse).toMatch(/event: status\ndata: \{"status":"queued","position":1\}/);
    expect(sse).toMatch(/event: status\ndata: \{"status":"building","position":null\}/);
    expect(sse).toMatch(/Installing dependencies/);
    expect(sse).toMatch(/event: end\ndata: \{[^\n]*"status":"running"/);
    // A finished deployment cannot be cancelled.
    const again = await api<{ error: { code: string } }>('POST', `/api/v1/deployments/${first.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('MINIPAAS_ERR_DEPLOYMENT_FINISHED');
  }, 240_000);

  it('cancels a running build: its process tree dies and the previous release keeps serving', async () => {
    const appBefore = (
      await api<{ currentRelease: number; status: string }>('GET', `/api/v1/apps/${liveApp}`)
    ).body;
    expect(appBefore.status).toBe('running');
    const d = await deployGated(liveApp, 'a2');
    await until(d.id, ['building']);
    const pid = await waitFor('the build script', async () => gates.pid('a2'));
    expect(isAlive(pid)).toBe(true);
    const c = await api<DeploymentView>('POST', `/api/v1/deployments/${d.id}/cancel`);
    expect(c.status).toBe(200);
    expect(c.body.status).toBe('cancelled');
    expect(c.body.log.join('\n')).toMatch(/Cancelled/);
    await waitFor('the build process to be gone', async () => !isAlive(pid));
    const app = (await api<{ currentRelease: number; status: string }>('GET', `/api/v1/apps/${liveApp}`))
      .body;
    expect(app).toMatchObject({ status: 'running', currentRelease: appBefore.currentRelease });
    const serving = (
      await api<{ deployments: DeploymentView[] }>('GET', `/api/v1/apps/${liveApp}/deployments`)
    ).body.deployments;
    expect(serving.filter((x) => x.status === 'running')).toHaveLength(1);
    const state = await cp.ctx.runtimes.forApp({ runtime: 'process' } as never).get(liveApp);
    expect(state?.release).toBe(`v${appBefore.currentRelease}`);
  }, 120_000);

  it('coalesces quick redeploys of one app: later deploys supersede queued ones, builds stay serial', async () => {
    const d1 = await deployGated('qf', 'f1');
    await until(d1.id, ['building']);
    const d2 = await deployGated('qf', 'f2');
    const d3 = await deployGated('qf', 'f3');
    const d4 = await deployGated('qf', 'f4');
    const v2 = await get(d2.id);
    const v3 = await get(d3.id);
    expect(v2).toMatchObject({ status: 'cancelled', supersededBy: d3.id });
    expect(v3).toMatchObject({ status: 'cancelled', supersededBy: d4.id });
    expect(v3.log.join('\n')).toMatch(/Superseded by deployment/);
    expect((await get(d4.id)).status).toBe('queued');
    await gates.open('f1');
    expect((await until(d1.id, ['running', 'failed'])).status).toBe('running');
    await until(d4.id, ['building']);
    await gates.open('f4');
    expect((await until(d4.id, ['running', 'failed'])).status).toBe('running');
    expect(gates.started('f2')).toBe(false);
    expect(gates.started('f3')).toBe(false);
    expect((await get(d1.id)).status).toBe('stopped');
    expect((await api<{ currentRelease: number }>('GET', '/api/v1/apps/qf')).body.currentRelease).toBe(2);
  }, 120_000);

  it('rebuilds a command deploy (seed 002 POST /services/{id}/builds); an upload is a clear 409', async () => {
    const up = await api<{ error: { code: string; message: string } }>(
      'POST',
      '/api/v1/services/qf/builds',
      {},
    );
    expect(up.status).toBe(409);
    expect(up.body.error).toMatchObject({ code: 'MINIPAAS_ERR_NOT_REBUILDABLE' });
    expect(up.body.error.message).toMatch(/upload/);
    const never = await api<{ error: { code: string } }>('POST', '/api/v1/services/qg/builds', {});
    expect(never.status).toBe(409);
    const first = await api<DeploymentView>('POST', '/api/v1/apps/qg/deploy', {
      command: `node -e "require('http').createServer((q,s)=>s.end('g')).listen(process.env.PORT)"`,
    });
    expect(first.status).toBe(202);
    expect((await until(first.body.id, ['running', 'failed'])).status).toBe('running');
    const again = await api<DeploymentView>('POST', '/api/v1/services/qg/builds', {});
    expect(again.status).toBe(202);
    const done = await until(again.body.id, ['running', 'failed']);
    expect(done).toMatchObject({ status: 'running', release: 2, message: 'rebuild' });
  }, 120_000);

  it('rolls back without building: a rollback deployment redeploys an old release as a new one', async () => {
    const app = await cp.ctx.apps.get('qf');
    expect(app.current_release).toBe(2);
    const queued = await cp.ctx.deploys.rollback(app, 1);
    expect(queued).toMatchObject({ kind: 'rollback', rollbackTo: 1, status: 'queued' });
    const done = await until(queued.id, ['running', 'failed']);
    expect(done.status, done.log.join('\n')).toBe('running');
    expect(done.release).toBe(3);
    expect(done.log.join('\n')).toMatch(/Rolling back to v1 as v3 \(no build\)/);
    expect(done.log.join('\n')).not.toMatch(/Installing dependencies/);
    const state = await cp.ctx.runtimes.forApp(app).get('qf');
    expect(state?.release).toBe('v3');
    const missing = await cp.ctx.deploys.rollback(app, 42).catch((e: Error) => e);
    expect((missing as Error).message).toMatch(/no release v42/);
  }, 120_000);

  it('deleting an app stops its running build first', async () => {
    const d = await deployGated('qh', 'h1');
    await until(d.id, ['building']);
    const pid = await waitFor('the build script', async () => gates.pid('h1'));
    const del = await cp.app.inject({ method: 'DELETE', url: '/api/v1/apps/qh', headers: auth });
    expect(del.statusCode, del.body).toBe(204);
    await waitFor('the build process to be gone', async () => !isAlive(pid));
    expect(
      (await cp.app.inject({ method: 'GET', url: `/api/v1/deployments/${d.id}`, headers: auth })).statusCode,
    ).toBe(404);
  }, 120_000);
});
