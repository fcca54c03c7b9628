/**
 * `git push` deploys (issue 10) through the control plane's smart-HTTP endpoint (`git http-backend`)
 * with the real git client, a real node agent and a real PostgreSQL database: the push output carries
 * the deploy log, a deploy whose app fails its health check refuses the push (the previous release keeps
 * serving, the branch keeps its commit), other branches are stored without deploying, wrong or weak
 * tokens are refused. The same endpoint then serves as a private HTTPS-token repository for a git
 * source, and nothing the platform wrote (home, database rows, its log, answers) holds the token.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gitCmd, procfileApp } from '../../../test/helpers/git-repos.ts';
import { routerGet, waitFor } from '../../../test/helpers/platform.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';
import { hashToken } from '../src/services/token-service.ts';

let home: string;
let work: string;
let agent: AgentHandle;
let cp: ControlPlane;
let dropDb: () => Promise<void> = async () => {};
let token: string;
let base: string;
let platformLog = '';

async function api<T>(
  method: string,
  url: string,
  payload?: unknown,
): Promise<{ status: number; body: T; raw: string }> {
  const r = await cp.app.inject({
    method: method as 'GET',
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(payload !== undefined ? { payload: payload as Record<string, string> } : {}),
  });
  return { status: r.statusCode, body: (r.body ? r.json() : null) as T, raw: r.body };
}

/** Runs git in `cwd`; never throws: the exit code and both outputs. */
function gitRun(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
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
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }),
    );
  });
}

const remote = (app: string, secret = token) => `http://git:${secret}@${base}/git/${app}.git`;
const serve = async (app: string) =>
  (await routerGet(agent.router?.port ?? 0, '/', `${app}.${cp.ctx.config.router.baseDomain}`)).body;

async function commitAll(dir: string, files: Record<string, string>, message: string): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  for (const [p, body] of Object.entries(files)) await writeFile(join(dir, p), body);
  await gitRun(['add', '-A'], dir);
  await gitRun(['commit', '-q', '-m', message], dir);
  return (await gitCmd(['rev-parse', 'HEAD'], dir)).trim();
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-gitpush-'));
  work = await mkdtemp(join(tmpdir(), 'mp-gitpush-work-'));
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
    MINIPAAS_START_TIMEOUT_MS: '8000',
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  agent = await startAgent({
    config,
    logger: pino({ level: 'silent' }),
    router: { host: '127.0.0.1', port: 0 },
  });
  const db = await createTestDatabase('gitpush');
  dropDb = db.drop;
  const sink = new Writable({
    write(chunk, _enc, cb) {
      platformLog += chunk.toString();
      cb();
    },
  });
  cp = await createControlPlane({
    config: { ...config, databaseUrl: db.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger: pino({ level: 'debug' }, sink),
    reconcile: false,
  });
  token = cp.createdAdminToken as string;
  await cp.listen();
  base = `127.0.0.1:${apiPort}`;
  expect((await api('POST', '/api/v1/apps', { name: 'pushapp' })).status).toBe(201);
  await gitRun(['init', '-q', '-b', 'main', work], tmpdir());
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await dropDb();
  await rm(home, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

describe('git push', () => {
  let sha1 = '';

  it('deploys a push to main and streams the deploy log into the push output', async () => {
    sha1 = await commitAll(work, procfileApp('pushed v1'), 'first push');
    const r = await gitRun(['push', remote('pushapp'), 'main'], work);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`remote: -----> Deploying ${sha1.slice(0, 7)} (first push) to pushapp`);
    expect(r.out).toMatch(/remote: -----> Release v1 created/);
    expect(r.out).toMatch(/remote: -----> v1 is live at/);
    expect(await serve('pushapp')).toBe('pushed v1');
    const rel = (
      await api<{ releases: Array<{ source: string; commit: { sha: string } }> }>(
        'GET',
        '/api/v1/apps/pushapp/releases',
      )
    ).body;
    expect(rel.releases[0]).toMatchObject({ source: 'git', commit: { sha: sha1 } });
  }, 180_000);

  it('refuses the push when the deploy fails its health check; v1 keeps serving and main keeps its commit', async () => {
    const bad = await commitAll(work, { 'server.js': 'process.exit(3);\n' }, 'broken server');
    const r = await gitRun(['push', remote('pushapp'), 'main'], work);
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toContain(`remote: -----> Deploying ${bad.slice(0, 7)} (broken server) to pushapp`);
    expect(r.out).toMatch(/remote: ! {5}Deploy failed.*the push is refused/);
    expect(r.out).toMatch(/pre-receive hook declined/);
    expect(await serve('pushapp')).toBe('pushed v1');
    const refs = await gitRun(['ls-remote', remote('pushapp'), 'refs/heads/main'], work);
    expect(refs.out.split('\t')[0]).toBe(sha1);
    await gitRun(['reset', '-q', '--hard', sha1], work);
  }, 180_000);

  it('stores another branch without deploying it', async () => {
    const before = (await api<{ builds: DeploymentView[] }>('GET', '/api/v1/apps/pushapp/builds?all=true'))
      .body.builds.length;
    await gitRun(['checkout', '-q', '-b', 'feature'], work);
    const sha = await commitAll(work, { 'notes.txt': 'wip\n' }, 'wip');
    const r = await gitRun(['push', remote('pushapp'), 'feature'], work);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('remote: -----> feature stored; pushapp deploys pushes to main');
    const after = (await api<{ builds: DeploymentView[] }>('GET', '/api/v1/apps/pushapp/builds?all=true'))
      .body.builds.length;
    expect(after).toBe(before);
    expect((await gitRun(['ls-remote', remote('pushapp'), 'refs/heads/feature'], work)).out).toContain(sha);
    await gitRun(['checkout', '-q', 'main'], work);
  }, 60_000);

  it('refuses a wrong token, no token and a viewer token; unknown apps and odd paths are 404s', async () => {
    const wrong = await gitRun(
      ['push', remote('pushapp', `mp_${randomBytes(24).toString('base64url')}`), 'main'],
      work,
    );
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/Authentication failed|401/);
    const none = await fetch(`http://${base}/git/pushapp.git/info/refs?service=git-receive-pack`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic/);
    const viewer = `mp_${randomBytes(24).toString('base64url')}`;
    await sql`INSERT INTO api_tokens (id, name, role, token_hash) VALUES (${randomUUID()}, 'viewer', 'viewer', ${hashToken(viewer)})`.execute(
      cp.ctx.store.db,
    );
    const v = await gitRun(['push', remote('pushapp', viewer), 'main'], work);
    expect(v.code).not.toBe(0);
    expect(v.out).toMatch(/403/);
    // A viewer may still clone.
    const clone = await gitRun(['clone', '-q', remote('pushapp', viewer), join(work, 'clone')], work);
    expect(clone.code, clone.out).toBe(0);
    const auth = { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` };
    for (const path of [
      '/git/nosuch.git/info/refs?service=git-upload-pack',
      '/git/..%2F..%2Fetc.git/info/refs?service=git-upload-pack',
      '/git/pushapp/info/refs?service=git-upload-pack',
      '/git/__proto__.git/info/refs?service=git-upload-pack',
    ]) {
      const r = await fetch(`http://${base}${path}`, { headers: auth });
      expect(r.status, path).toBe(404);
    }
    const dumb = await fetch(`http://${base}/git/pushapp.git/info/refs`, { headers: auth });
    expect(dumb.status).toBe(400);
  }, 60_000);

  it('fetches a private repository with an HTTPS token that never shows up anywhere', async () => {
    // The platform's own push endpoint is a private repository: it needs the token.
    const url = `http://${base}/git/pushapp.git`;
    const noCred = await api('POST', '/api/v1/apps', { name: 'cloner', git: { url, ref: 'main' } });
    expect(noCred.status).toBe(201);
    const denied = await api<{ error: { code: string } }>('POST', '/api/v1/apps/cloner/git/builds');
    expect(denied.status).toBe(422);
    // Its own token (not the admin's, which the platform keeps in MINIPAAS_HOME/admin-token by design).
    const repoToken = `mp_${randomBytes(24).toString('base64url')}`;
    await sql`INSERT INTO api_tokens (id, name, role, token_hash) VALUES (${randomUUID()}, 'ci', 'developer', ${hashToken(repoToken)})`.execute(
      cp.ctx.store.db,
    );
    // Given the way people paste it: a clone URL with the credentials in it.
    const put = await api<{ url: string; credential: string }>('PUT', '/api/v1/apps/cloner/git', {
      url: url.replace('http://', `http://ci:${repoToken}@`),
      ref: 'main',
    });
    expect(put.status, put.raw).toBe(200);
    expect(put.raw).not.toContain(repoToken);
    expect(put.body).toMatchObject({ url, credential: 'token' });
    const b = await api<DeploymentView>('POST', '/api/v1/apps/cloner/git/builds');
    expect(b.status, b.raw).toBe(202);
    const d = await waitFor(
      'the clone to deploy',
      async () => {
        const v = (await api<DeploymentView>('GET', `/api/v1/deployments/${b.body.id}`)).body;
        return ['running', 'failed'].includes(v.status) ? v : null;
      },
      120_000,
    );
    expect(d.status, d.log.join('\n')).toBe('running');
    expect(await serve('cloner')).toBe('pushed v1');

    // Everything the platform wrote: files under its home, every table, its log, the API answers.
    const secretParts = [
      repoToken,
      repoToken.slice(3),
      Buffer.from(`ci:${repoToken}`).toString('base64'),
      `ci:${repoToken}@`,
    ];
    const files = await readdir(home, { recursive: true });
    for (const f of files) {
      const text = await readFile(join(home, f))
        .then((b) => b.toString('latin1'))
        .catch(() => '');
      for (const s of secretParts) expect(text.includes(s), f).toBe(false);
    }
    const tables = await sql<{
      t: string;
    }>`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public'`.execute(
      cp.ctx.store.db,
    );
    for (const { t } of tables.rows) {
      const rows = await sql.raw(`SELECT * FROM "${t}"`).execute(cp.ctx.store.db);
      const text = JSON.stringify(rows.rows);
      for (const s of secretParts) expect(text.includes(s), t).toBe(false);
    }
    for (const s of secretParts) expect(platformLog.includes(s)).toBe(false);
    expect(platformLog.length).toBeGreaterThan(0);
    for (const path of [
      '/api/v1/apps/cloner',
      '/api/v1/apps/cloner/git',
      `/api/v1/deployments/${b.body.id}`,
      '/api/v1/apps/cloner/releases',
    ]) {
      const r = await api('GET', path);
      for (const s of secretParts) expect(r.raw.includes(s), path).toBe(false);
    }
  }, 180_000);
});
