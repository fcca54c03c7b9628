/**
 * Push webhooks (issue 10) against a real repository served by `git daemon`, a real node agent and a real
 * PostgreSQL database. GitHub-format deliveries with a valid signature deploy the pushed commit; a wrong
 * signature, a missing one, a wrong token, another branch or a replayed delivery id deploy nothing and are
 * logged with the reason. GitLab and Gitea deliveries, ping, disable/enable and regenerate.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GitServer,
  procfileApp,
  startGitServer,
  type TestRepo,
} from '../../../test/helpers/git-repos.ts';
import { routerGet, waitFor } from '../../../test/helpers/platform.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let agent: AgentHandle;
let cp: ControlPlane;
let gitd: GitServer;
let repo: TestRepo;
let dropDb: () => Promise<void> = async () => {};
let auth: { authorization: string };
let secret = '';

async function api<T>(method: string, url: string, payload?: unknown): Promise<{ status: number; body: T }> {
  const r = await cp.app.inject({
    method: method as 'GET',
    url,
    headers: auth,
    ...(payload !== undefined ? { payload: payload as Record<string, string> } : {}),
  });
  return { status: r.statusCode, body: (r.body ? r.json() : null) as T };
}

interface Delivery {
  outcome: string;
  reason: string;
  deliveryId: string | null;
  deploymentId: string | null;
  commit: string | null;
}

const pushPayload = (sha: string, branch = 'main') =>
  JSON.stringify({
    ref: `refs/heads/${branch}`,
    before: '0'.repeat(40),
    after: sha,
    repository: { clone_url: gitd.url('hooked') },
    head_commit: { id: sha, message: 'x' },
  });

/** POSTs a delivery; `sign` computes X-Hub-Signature-256 with this secret (undefined: unsigned). */
async function deliver(o: {
  body: string;
  event?: string;
  token?: string;
  sign?: string | undefined;
  id?: string;
  headers?: Record<string, string>;
}): Promise<{
  status: number;
  body: { outcome?: string; reason?: string; deployment?: DeploymentView; error?: { message: string } };
}> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': o.event ?? 'push',
    'x-github-delivery': o.id ?? randomUUID(),
    ...(o.sign !== undefined
      ? { 'x-hub-signature-256': `sha256=${createHmac('sha256', o.sign).update(o.body).digest('hex')}` }
      : {}),
    ...o.headers,
  };
  const r = await cp.app.inject({
    method: 'POST',
    url: `/api/v1/webhooks/hooked/${o.token ?? secret}`,
    headers,
    payload: o.body,
  });
  return { status: r.statusCode, body: r.json() };
}

const deliveries = async () =>
  (await api<{ deliveries: Delivery[] }>('GET', '/api/v1/apps/hooked/webhook/deliveries')).body.deliveries;
const buildCount = async () =>
  (await api<{ builds: DeploymentView[] }>('GET', '/api/v1/apps/hooked/builds?all=true')).body.builds.length;
const finished = (id: string) =>
  waitFor(
    `deployment ${id}`,
    async () => {
      const d = (await api<DeploymentView>('GET', `/api/v1/deployments/${id}`)).body;
      return ['running', 'failed'].includes(d.status) ? d : null;
    },
    120_000,
  );
const serve = async () =>
  (await routerGet(agent.router?.port ?? 0, '/', `hooked.${cp.ctx.config.router.baseDomain}`)).body;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-hooks-'));
  gitd = await startGitServer();
  repo = await gitd.repo('hooked');
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
  const db = await createTestDatabase('hooks');
  dropDb = db.drop;
  cp = await createControlPlane({
    config: { ...config, databaseUrl: db.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
    reconcile: false,
  });
  auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  expect(
    (await api('POST', '/api/v1/apps', { name: 'hooked', git: { url: gitd.url('hooked'), ref: 'main' } }))
      .status,
  ).toBe(201);
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await dropDb();
  await gitd?.close();
  await rm(home, { recursive: true, force: true });
});

describe('push webhooks', () => {
  it('creates a webhook whose secret is shown on request only', async () => {
    const created = await api<{ path: string; secret: string; branch: string; enabled: boolean }>(
      'POST',
      '/api/v1/apps/hooked/webhook',
    );
    expect(created.status).toBe(201);
    secret = created.body.secret;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.body).toMatchObject({
      path: `/api/v1/webhooks/hooked/${secret}`,
      branch: 'main',
      enabled: true,
    });
    const masked = await api<{ path: string; secret: string | null }>('GET', '/api/v1/apps/hooked/webhook');
    expect(masked.body.secret).toBeNull();
    expect(JSON.stringify(masked.body)).not.toContain(secret);
  });

  it('answers a ping, deploys a signed push and ignores its replay', async () => {
    const ping = await deliver({ body: '{"zen":"hi","hook_id":1}', event: 'ping', sign: secret });
    expect(ping.status).toBe(200);
    expect(ping.body.reason).toBe('pong');

    const sha = await repo.commit(procfileApp('hooked v1'), 'hook me');
    const id = randomUUID();
    const body = pushPayload(sha);
    const ok = await deliver({ body, sign: secret, id });
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
    expect(ok.body.deployment?.message).toBe(`${sha.slice(0, 7)} hook me`);
    const d = await finished(ok.body.deployment?.id as string);
    expect(d.status, d.log.join('\n')).toBe('running');
    expect(await serve()).toBe('hooked v1');

    const before = await buildCount();
    const replay = await deliver({ body, sign: secret, id });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ outcome: 'ignored', reason: 'replayed delivery id' });
    expect(await buildCount()).toBe(before);
    const log = await deliveries();
    expect(log[0]).toMatchObject({ outcome: 'ignored', reason: 'replayed delivery id', deliveryId: id });
    expect(log[1]).toMatchObject({ outcome: 'accepted', deliveryId: id, commit: sha, deploymentId: d.id });
    expect(log[2]).toMatchObject({ outcome: 'accepted', reason: 'ping' });
  }, 180_000);

  it('deploys nothing for a wrong or missing signature, a wrong token or another branch, and logs why', async () => {
    const sha = await repo.commit({ 'server.js': procfileApp('hooked v2')['server.js'] as string }, 'v2');
    const before = await buildCount();
    const body = pushPayload(sha);
    const cases: Array<[Parameters<typeof deliver>[0], number, RegExp]> = [
      [{ body, sign: 'not-the-secret' }, 401, /wrong signature/],
      [{ body }, 401, /unsigned/],
      [{ body, sign: secret, token: 'A'.repeat(43) }, 401, /wrong webhook token/],
      // A signature over other bytes (the body changed in transit).
      [{ body: body.replace('refs/heads/main', 'refs/heads/main '), sign: 'x' }, 401, /wrong signature/],
      [{ body: pushPayload(sha, 'feature'), sign: secret }, 200, /branch feature is not main/],
      [
        {
          body: '{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000","deleted":true}',
          sign: secret,
        },
        200,
        /deleted/,
      ],
      [{ body: 'not json', sign: secret }, 400, /not JSON/],
      [{ body, sign: secret, event: 'issues' }, 200, /event issues does not deploy/],
    ];
    for (const [c, status, reason] of cases) {
      const r = await deliver(c);
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      expect(r.body.reason ?? r.body.error?.message).toMatch(reason);
    }
    expect(await buildCount()).toBe(before);
    const log = (await deliveries()).slice(0, cases.length).reverse();
    expect(log.map((l) => l.outcome)).toEqual([
      'rejected',
      'rejected',
      'rejected',
      'rejected',
      'ignored',
      'ignored',
      'rejected',
      'ignored',
    ]);
    for (const [i, l] of log.entries()) expect(l.reason).toMatch(cases[i]?.[2] as RegExp);
    // Unknown apps and malformed tokens: 401 without a log entry anywhere.
    const r = await cp.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/nosuch/${secret}`,
      payload: body,
      headers: { 'content-type': 'application/json', 'x-github-event': 'push' },
    });
    expect(r.statusCode).toBe(401);
    const enc = await cp.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/hooked/..%2F${secret}`,
      payload: body,
      headers: { 'content-type': 'application/json', 'x-github-event': 'push' },
    });
    expect([401, 404]).toContain(enc.statusCode);
    expect(await buildCount()).toBe(before);
  }, 60_000);

  it('accepts GitLab and Gitea deliveries, honours disable, and regenerate retires the old token', async () => {
    const sha = await repo.commit({ 'server.js': procfileApp('hooked v3')['server.js'] as string }, 'v3');
    const body = pushPayload(sha);
    const gitlab = await cp.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/hooked/${secret}`,
      headers: {
        'content-type': 'application/json',
        'x-gitlab-event': 'Push Hook',
        'x-gitlab-token': 'wrong',
        'x-gitlab-event-uuid': randomUUID(),
      },
      payload: body,
    });
    expect(gitlab.statusCode).toBe(401);
    const gl = await cp.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/hooked/${secret}`,
      headers: {
        'content-type': 'application/json',
        'x-gitlab-event': 'Push Hook',
        'x-gitlab-token': secret,
        'x-gitlab-event-uuid': randomUUID(),
      },
      payload: body,
    });
    expect(gl.statusCode, gl.body).toBe(202);
    expect((await finished(gl.json<{ deployment: DeploymentView }>().deployment.id)).status).toBe('running');
    expect(await serve()).toBe('hooked v3');

    const sha4 = await repo.commit({ 'server.js': procfileApp('hooked v4')['server.js'] as string }, 'v4');
    const giteaBody = pushPayload(sha4);
    const gitea = await cp.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/hooked/${secret}`,
      headers: {
        'content-type': 'application/json',
        'x-gitea-event': 'push',
        'x-gitea-delivery': randomUUID(),
        'x-gitea-signature': createHmac('sha256', secret).update(giteaBody).digest('hex'),
      },
      payload: giteaBody,
    });
    expect(gitea.statusCode, gitea.body).toBe(202);
    expect((await finished(gitea.json<{ deployment: DeploymentView }>().deployment.id)).status).toBe(
      'running',
    );
    expect(await serve()).toBe('hooked v4');

    expect((await api('PATCH', '/api/v1/apps/hooked/webhook', { enabled: false })).status).toBe(200);
    const before = await buildCount();
    const off = await deliver({ body: pushPayload(sha4), sign: secret });
    expect(off.body).toMatchObject({ outcome: 'ignored', reason: 'the webhook is disabled' });
    expect((await api('PATCH', '/api/v1/apps/hooked/webhook', { enabled: true })).status).toBe(200);

    const regen = await api<{ secret: string }>('POST', '/api/v1/apps/hooked/webhook/regenerate');
    expect(regen.body.secret).not.toBe(secret);
    const old = await deliver({ body: pushPayload(sha4), sign: secret });
    expect(old.status).toBe(401);
    expect(await buildCount()).toBe(before);
    expect((await api('PATCH', '/api/v1/apps/hooked/webhook', { branch: '--bad' })).status).toBe(400);
    expect((await api('PATCH', '/api/v1/apps/hooked/webhook', { constructor: true })).status).toBe(400);
  }, 180_000);

  it('a project webhook deploys the apps of the project built from the pushed repository and branch', async () => {
    expect(
      (
        await api('POST', '/api/v1/apps', {
          name: 'hooked-b',
          git: { url: gitd.url('hooked'), ref: 'other' },
        })
      ).status,
    ).toBe(201);
    const created = await api<{ path: string; secret: string }>('POST', '/api/v1/projects/default/webhook');
    expect(created.status).toBe(201);
    const projectSecret = created.body.secret;
    expect(created.body.path).toBe(`/api/webhooks/default/${projectSecret}`);
    const sha = await repo.commit(
      { 'server.js': procfileApp('project hook')['server.js'] as string },
      'project hook',
    );
    const send = async (body: object, sign = projectSecret, id = randomUUID()) => {
      const raw = JSON.stringify(body);
      const r = await cp.app.inject({
        method: 'POST',
        url: created.body.path,
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'push',
          'x-github-delivery': id,
          'x-hub-signature-256': `sha256=${createHmac('sha256', sign).update(raw).digest('hex')}`,
        },
        payload: raw,
      });
      return {
        status: r.statusCode,
        body: r.json<{ outcome: string; reason: string; deployments: DeploymentView[] }>(),
      };
    };
    const payload = {
      ref: 'refs/heads/main',
      after: sha,
      repository: { clone_url: gitd.url('hooked').replace('.git', '') },
    };
    expect((await send(payload, 'wrong')).status).toBe(401);
    const id = randomUUID();
    const ok = await send(payload, projectSecret, id);
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
    expect(ok.body.deployments.map((d) => d.appName)).toEqual(['hooked']);
    expect((await finished(ok.body.deployments[0]?.id as string)).status).toBe('running');
    expect(await serve()).toBe('project hook');
    expect((await send(payload, projectSecret, id)).body).toMatchObject({
      outcome: 'ignored',
      reason: 'replayed delivery id',
    });
    const elsewhere = await send({
      ...payload,
      repository: { clone_url: 'https://example.com/other/repo.git' },
    });
    expect(elsewhere.body.outcome).toBe('ignored');
    expect(elsewhere.body.reason).toMatch(/no app of this project builds example\.com\/other\/repo main/);
    const log = (
      await api<{ deliveries: Array<{ outcome: string; reason: string }> }>(
        'GET',
        '/api/v1/projects/default/webhook/deliveries',
      )
    ).body.deliveries;
    expect(log.map((d) => d.outcome)).toEqual(['ignored', 'ignored', 'accepted', 'rejected']);
    expect(log[2]?.reason).toBe(`deploying ${sha.slice(0, 7)} to hooked`);
  }, 180_000);
});
