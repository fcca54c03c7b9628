/**
 * Preview environments (issue 10) with a real repository served by `git daemon`, real `git push` to the
 * control plane, a real node agent and a real PostgreSQL database: with previews on, a pushed branch (push
 * webhook or git push) and an opened pull request each deploy `APP-BRANCH` with the parent's config,
 * served at its own host; deleting the branch or closing the pull request destroys it.
 */
import { execFile } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
import { previewName } from '../src/git/preview-service.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let agent: AgentHandle;
let cp: ControlPlane;
let gitd: GitServer;
let repo: TestRepo;
let dropDb: () => Promise<void> = async () => {};
let token: string;
let base: string;
let secret: string;

async function api<T>(method: string, url: string, payload?: unknown): Promise<{ status: number; body: T }> {
  const r = await cp.app.inject({
    method: method as 'GET',
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(payload !== undefined ? { payload: payload as Record<string, string> } : {}),
  });
  return { status: r.statusCode, body: (r.body ? r.json() : null) as T };
}

async function deliver(event: string, body: object) {
  const raw = JSON.stringify(body);
  const r = await cp.app.inject({
    method: 'POST',
    url: `/api/v1/webhooks/web/${secret}`,
    headers: {
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`,
    },
    payload: raw,
  });
  return {
    status: r.statusCode,
    body: r.json<{ outcome: string; reason: string; deployment?: DeploymentView }>(),
  };
}

const serve = async (app: string) =>
  (await routerGet(agent.router?.port ?? 0, '/', `${app}.${cp.ctx.config.router.baseDomain}`)).body;
const finished = (id: string) =>
  waitFor(
    `deployment ${id}`,
    async () => {
      const d = (await api<DeploymentView>('GET', `/api/v1/deployments/${id}`)).body;
      return ['running', 'failed'].includes(d.status) ? d : null;
    },
    120_000,
  );
const previews = async (app: string) =>
  (
    await api<{ previews: Array<{ app: string; branch: string; pullRequest: number | null; url: string }> }>(
      'GET',
      `/api/v1/apps/${app}/previews`,
    )
  ).body.previews;
const exists = async (app: string) => (await api('GET', `/api/v1/apps/${app}`)).status === 200;

function gitRun(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(
      'git',
      args,
      {
        cwd,
        env: {
          ...process.env,
          GIT_TERMINAL_PROMPT: '0',
          GIT_CONFIG_GLOBAL: '/dev/null',
          GIT_AUTHOR_NAME: 't',
          GIT_AUTHOR_EMAIL: 't@e',
          GIT_COMMITTER_NAME: 't',
          GIT_COMMITTER_EMAIL: 't@e',
        },
        timeout: 180_000,
      },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) || 1 : 0, out: stdout + stderr }),
    ),
  );
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-previews-'));
  gitd = await startGitServer();
  repo = await gitd.repo('web');
  const portMin = 23000 + Math.floor(Math.random() * 80) * 100;
  const apiPort = await freePort();
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_API_HOST: '127.0.0.1',
    MINIPAAS_API_PORT: String(apiPort),
    MINIPAAS_APP_PORT_MIN: String(portMin),
    MINIPAAS_APP_PORT_MAX: String(portMin + 99),
    MINIPAAS_ROUTER_PORT: String(await freePort()),
    MINIPAAS_STOP_GRACE_MS: '1000',
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  const logger = pino({ level: 'silent' });
  agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
  const db = await createTestDatabase('previews');
  dropDb = db.drop;
  cp = await createControlPlane({
    config: { ...config, databaseUrl: db.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
    reconcile: false,
  });
  token = cp.createdAdminToken as string;
  await cp.listen();
  base = `127.0.0.1:${apiPort}`;
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await dropDb();
  await gitd?.close();
  await rm(home, { recursive: true, force: true });
});

const greeter = (label: string) => ({
  ...procfileApp(''),
  'server.js': `require('node:http').createServer((q, s) => s.end(${JSON.stringify(label)} + ' ' + process.env.GREETING + ' ' + process.env.API_KEY)).listen(process.env.PORT);\n`,
});

describe('preview environments', () => {
  it('names previews APP-BRANCH, DNS-safe and at most 40 characters', () => {
    expect(previewName('web', 'feature/Login_Page')).toBe('web-feature-login-page');
    expect(previewName('web', '---')).toBe('web-branch');
    const long = previewName('web', 'x'.repeat(80));
    expect(long.length).toBeLessThanOrEqual(40);
    expect(long).toMatch(/^web-x+-[0-9a-f]{6}$/);
  });

  it('deploys a pushed branch (webhook) with the parent config, and deleting the branch destroys it', async () => {
    await repo.commit(greeter('main'), 'main');
    expect((await api('POST', '/api/v1/apps', { name: 'web', git: gitd.url('web') })).status).toBe(201);
    expect(
      (await api('PATCH', '/api/v1/apps/web', { env: { GREETING: 'hi' }, secrets: { API_KEY: 's3cret' } }))
        .status,
    ).toBe(200);
    expect(
      (await api<{ previews: boolean }>('PATCH', '/api/v1/apps/web/git', { previews: true })).body.previews,
    ).toBe(true);
    secret = (await api<{ secret: string }>('POST', '/api/v1/apps/web/webhook')).body.secret;

    const sha = await repo.commit(greeter('feature'), 'feature work', 'feature/Login_Page');
    const r = await deliver('push', { ref: 'refs/heads/feature/Login_Page', after: sha });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.deployment?.appName).toBe('web-feature-login-page');
    expect((await finished(r.body.deployment?.id as string)).status).toBe('running');
    expect(await serve('web-feature-login-page')).toBe('feature hi s3cret');
    const list = await previews('web');
    expect(list).toMatchObject([
      { app: 'web-feature-login-page', branch: 'feature/Login_Page', pullRequest: null },
    ]);
    // The preview's secret is its own sealed copy.
    const pv = await api<{ secrets: string[] }>('GET', '/api/v1/apps/web-feature-login-page');
    expect(pv.body.secrets).toEqual(['API_KEY']);

    const del = await deliver('push', {
      ref: 'refs/heads/feature/Login_Page',
      after: '0'.repeat(40),
      deleted: true,
    });
    expect(del.body).toMatchObject({
      outcome: 'accepted',
      reason: 'branch feature/Login_Page deleted: preview destroyed',
    });
    expect(await exists('web-feature-login-page')).toBe(false);
    expect(await previews('web')).toEqual([]);
  }, 180_000);

  it('deploys an opened pull request and destroys it when the pull request closes', async () => {
    const sha = await repo.commit(greeter('pr'), 'pr work', 'fix-1');
    const pr = (action: string) => ({
      action,
      number: 7,
      pull_request: { number: 7, head: { ref: 'fix-1', sha } },
    });
    const opened = await deliver('pull_request', pr('opened'));
    expect(opened.status, JSON.stringify(opened.body)).toBe(202);
    expect((await finished(opened.body.deployment?.id as string)).status).toBe('running');
    expect(await serve('web-fix-1')).toBe('pr hi s3cret');
    expect(await previews('web')).toMatchObject([{ app: 'web-fix-1', pullRequest: 7 }]);
    const labeled = await deliver('pull_request', pr('labeled'));
    expect(labeled.body.outcome).toBe('ignored');
    const closed = await deliver('pull_request', pr('closed'));
    expect(closed.body.reason).toBe('pull request #7 closed: preview destroyed');
    expect(await exists('web-fix-1')).toBe(false);
  }, 180_000);

  it('deploys a branch pushed with git push and destroys it when the branch is deleted', async () => {
    const work = await mkdtemp(join(tmpdir(), 'mp-previews-work-'));
    try {
      const remote = `http://git:${token}@${base}/git/web.git`;
      await gitRun(['init', '-q', '-b', 'main'], work);
      for (const [f, b] of Object.entries(greeter('pushed'))) await writeFile(join(work, f), b);
      await gitRun(['add', '-A'], work);
      await gitRun(['commit', '-q', '-m', 'pushed'], work);
      const pushed = await gitRun(['push', remote, 'main:refs/heads/try-this'], work);
      expect(pushed.code, pushed.out).toBe(0);
      expect(pushed.out).toMatch(
        /remote: -----> Preview of try-this: deploying [0-9a-f]{7} \(pushed\) to web-try-this/,
      );
      expect(pushed.out).toMatch(/remote: -----> v1 is live/);
      expect(await serve('web-try-this')).toBe('pushed hi s3cret');
      const gone = await gitRun(['push', remote, ':refs/heads/try-this'], work);
      expect(gone.code, gone.out).toBe(0);
      expect(gone.out).toContain('remote: -----> Destroying the preview web-try-this of try-this');
      expect(await exists('web-try-this')).toBe(false);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 180_000);

  it('deleting the parent destroys its previews; with previews off a branch push only stores', async () => {
    const sha = await repo.commit(greeter('other'), 'other', 'other');
    const r = await deliver('push', { ref: 'refs/heads/other', after: sha });
    expect((await finished(r.body.deployment?.id as string)).status).toBe('running');
    expect((await api('PATCH', '/api/v1/apps/web/git', { previews: false })).status).toBe(200);
    const off = await deliver('push', { ref: 'refs/heads/another', after: sha });
    expect(off.body).toMatchObject({ outcome: 'ignored', reason: 'branch another is not main' });
    expect((await api('DELETE', '/api/v1/apps/web')).status).toBe(204);
    expect(await exists('web-other')).toBe(false);
  }, 180_000);
});
