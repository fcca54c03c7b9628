/**
 * Auto-sync (issue 10, seed 002 GitOps) against a real repository served by `git daemon`, a real node agent
 * and a real PostgreSQL database, with the control plane's loops running: an app with
 * `git: {..., sync: {interval}}` deploys the ref's commit, then each new commit pushed to the repository,
 * without anyone asking; a commit already deployed another way is not built twice.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GitServer, procfileApp, startGitServer } from '../../../test/helpers/git-repos.ts';
import { routerGet, waitFor } from '../../../test/helpers/platform.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let agent: AgentHandle;
let cp: ControlPlane;
let gitd: GitServer;
let dropDb: () => Promise<void> = async () => {};
let auth: { authorization: string };

async function api<T>(method: string, url: string, payload?: unknown): Promise<{ status: number; body: T }> {
  const r = await cp.app.inject({
    method: method as 'GET',
    url,
    headers: auth,
    ...(payload !== undefined ? { payload: payload as Record<string, string> } : {}),
  });
  return { status: r.statusCode, body: (r.body ? r.json() : null) as T };
}

const serve = async (app: string) =>
  (await routerGet(agent.router?.port ?? 0, '/', `${app}.${cp.ctx.config.router.baseDomain}`)).body;
const serving = (app: string, text: string) =>
  waitFor(`${app} to serve "${text}"`, async () => ((await serve(app)) === text ? true : null), 90_000, 250);

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-gitsync-'));
  gitd = await startGitServer();
  const portMin = 23000 + Math.floor(Math.random() * 80) * 100;
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_APP_PORT_MIN: String(portMin),
    MINIPAAS_APP_PORT_MAX: String(portMin + 99),
    MINIPAAS_ROUTER_PORT: String(await freePort()),
    MINIPAAS_STOP_GRACE_MS: '1000',
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  const logger = pino({ level: 'silent' });
  agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
  const db = await createTestDatabase('gitsync');
  dropDb = db.drop;
  cp = await createControlPlane({
    config: { ...config, databaseUrl: db.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
  });
  auth = { authorization: `Bearer ${cp.createdAdminToken}` };
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await dropDb();
  await gitd?.close();
  await rm(home, { recursive: true, force: true });
});

describe('auto-sync', () => {
  it('deploys the ref, then every new commit, and does not rebuild a commit deployed another way', async () => {
    const repo = await gitd.repo('synced');
    await repo.commit(procfileApp('sync v1'), 'v1');
    const created = await api('POST', '/api/v1/apps', {
      name: 'synced',
      git: { url: gitd.url('synced'), ref: 'main', sync: { interval: 5 } },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((await api<{ sync: unknown }>('GET', '/api/v1/apps/synced/git')).body.sync).toEqual({
      intervalSeconds: 5,
    });
    await serving('synced', 'sync v1');

    const sha2 = await repo.commit({ 'server.js': procfileApp('sync v2')['server.js'] as string }, 'v2');
    await serving('synced', 'sync v2');
    const rels = (
      await api<{ releases: Array<{ commit: { sha: string } | null }> }>(
        'GET',
        '/api/v1/apps/synced/releases',
      )
    ).body.releases;
    expect(rels[0]?.commit?.sha).toBe(sha2);

    // Built by hand first: the next check records it instead of building it again. (The last check is
    // stamped now, so the next one comes a whole interval after the manual build is queued.)
    await sql`UPDATE git_sources SET synced_at = now()`.execute(cp.ctx.store.db);
    const sha3 = await repo.commit({ 'server.js': procfileApp('sync v3')['server.js'] as string }, 'v3');
    const manual = await api<DeploymentView>('POST', '/api/v1/apps/synced/git/builds');
    expect(manual.status).toBe(202);
    await waitFor(
      'the sync to see v3',
      async () => {
        const r = await sql<{ synced_sha: string }>`SELECT synced_sha FROM git_sources`.execute(
          cp.ctx.store.db,
        );
        return r.rows[0]?.synced_sha === sha3 ? true : null;
      },
      60_000,
      250,
    );
    const builds = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM deployments WHERE commit_sha = ${sha3}`.execute(cp.ctx.store.db);
    expect(builds.rows[0]?.n).toBe(1);
    await serving('synced', 'sync v3');
  }, 240_000);

  it('refuses bad intervals', async () => {
    for (const sync of [{ interval: 1 }, { interval: 10 ** 9 }, { interval: '5' }, { every: 5 }, 5])
      expect(
        (await api('POST', '/api/v1/apps', { name: 'badsync', git: { url: gitd.url('synced'), sync } }))
          .status,
      ).toBe(400);
    expect(
      (await api('PUT', '/api/v1/apps/synced/git', { url: gitd.url('synced'), sync: { interval: 2 } }))
        .status,
    ).toBe(400);
  });
});
