/**
 * Mounts cannot escalate (issue 11): with volumes and the docker runtime in the platform, no caller can
 * mount a host path or run a privileged container. A developer (who deploys and sets env) cannot create
 * volumes at all; an admin's volume is always the platform's own directory; no app field, PATCH or
 * `minipaas.yaml` key asks for host paths, privileges or capabilities. Every refusal changes nothing.
 * (The containers the docker runtime starts are checked for no privilege, no added capability and no bind
 * mount in test/e2e/docker.test.ts.) Real PostgreSQL, in-process API.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { rawTar } from '../../../test/helpers/tarball.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let cp: ControlPlane;
let agent: AgentHandle;
let dropDb: () => Promise<void> = async () => {};
const auth: Record<'owner' | 'admin' | 'developer', { authorization: string }> = {} as never;

async function call(who: keyof typeof auth, method: string, url: string, payload?: unknown) {
  const r = await cp.app.inject({
    method: method as 'GET',
    url,
    headers: auth[who],
    ...(payload !== undefined ? { payload: payload as Record<string, string> } : {}),
  });
  return { status: r.statusCode, body: r.body ? r.json() : null };
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-mounts-'));
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_LOG_LEVEL: 'silent',
    MINIPAAS_ROUTER_PORT: String(await freePort()),
  });
  const logger = pino({ level: 'silent' });
  agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
  const db = await createTestDatabase('mounts');
  dropDb = db.drop;
  cp = await createControlPlane({
    config: { ...config, databaseUrl: db.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
    reconcile: false,
  });
  auth.owner = { authorization: `Bearer ${cp.createdAdminToken}` };
  for (const role of ['admin', 'developer'] as const) {
    const t = await call('owner', 'POST', '/api/v1/tokens', { name: `t-${role}`, role });
    expect(t.status, JSON.stringify(t.body)).toBe(201);
    auth[role] = { authorization: `Bearer ${t.body.token}` };
  }
  expect((await call('owner', 'POST', '/api/v1/apps', { name: 'web' })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await dropDb();
  await rm(home, { recursive: true, force: true });
});

describe('mounts cannot escalate', () => {
  it('a developer cannot create a volume; an admin cannot name a host path; nothing is stored', async () => {
    const dev = await call('developer', 'POST', '/api/v1/projects/default/volumes', {
      name: 'data',
      app: 'web',
    });
    expect(dev.status).toBe(403);
    for (const body of [
      { name: 'root', hostPath: '/' },
      { name: 'sock', source: '/var/run/docker.sock', mountPath: '/var/run/docker.sock' },
      { name: 'etc', mountPath: '/app/storage', type: 'bind', device: '/etc' },
      { name: 'priv', privileged: true },
      { name: '../../etc', mountPath: '/app/storage' },
      { name: 'up', mountPath: '/app/../../etc' },
    ]) {
      const r = await call('admin', 'POST', '/api/v1/projects/default/volumes', body);
      expect(r.status, JSON.stringify([body, r.body])).toBe(400);
    }
    expect((await call('owner', 'GET', '/api/v1/projects/default/volumes')).body.volumes).toEqual([]);
  });

  it('no app field or PATCH asks for host mounts, privileges or capabilities', async () => {
    for (const extra of [
      { privileged: true },
      { volumes: [{ source: '/', target: '/host' }] },
      { binds: ['/:/host'] },
      { capAdd: ['SYS_ADMIN'] },
      { hostConfig: { Privileged: true } },
      { network_mode: 'host' },
    ]) {
      const created = await call('developer', 'POST', '/api/v1/apps', {
        name: 'evil',
        runtime: 'process',
        ...extra,
      });
      expect(created.status, JSON.stringify([extra, created.body])).toBe(400);
      const patched = await call('developer', 'PATCH', '/api/v1/apps/web', extra);
      expect(patched.status, JSON.stringify([extra, patched.body])).toBe(400);
    }
    expect((await call('owner', 'GET', '/api/v1/apps/evil')).status).toBe(404);
  });

  it('a minipaas.yaml asking for privileges or host mounts gets nothing of the kind', async () => {
    const r = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps/web/deploy',
      headers: { ...auth.developer, 'content-type': 'application/gzip' },
      payload: rawTar([
        { name: 'minipaas.yaml', body: 'privileged: true\nvolumes:\n  - /:/host\ncap_add: [SYS_ADMIN]\n' },
        {
          name: 'Procfile',
          body: 'web: node -e "require(\'http\').createServer((q,s)=>s.end()).listen(process.env.PORT)"\n',
        },
      ]),
    });
    // Refused outright, or accepted with the keys ignored (named in the deploy log): never applied.
    if (r.statusCode === 202) {
      const view = await call('owner', 'GET', '/api/v1/apps/web');
      expect(JSON.stringify(view.body)).not.toMatch(/privileged|SYS_ADMIN|\/host/);
    } else expect(r.statusCode, r.body).toBe(400);
  });
});
