/**
 * Deploy from git (issue 10) against real repositories served by a real `git daemon`, a real node agent
 * and a real PostgreSQL database: an app created with a git source builds its ref, the release records
 * the commit; a second commit built through seed 002's `POST /services/{id}/builds` deploys the new SHA,
 * and a rollback returns to the first commit. Bad sources are 4xx before anything is stored or queued.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GitServer, gitCmd, procfileApp, startGitServer } from '../../../test/helpers/git-repos.ts';
import { routerGet, waitFor } from '../../../test/helpers/platform.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { rotateMasterKey, secretBoxFor } from '../src/secrets/app-secrets.ts';
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
    headers: typeof payload === 'string' ? { ...auth, 'content-type': 'application/json' } : auth,
    ...(payload !== undefined ? { payload: payload as Record<string, string> } : {}),
  });
  return { status: r.statusCode, body: (r.body ? r.json() : null) as T };
}

const finished = (id: string) =>
  waitFor(
    `deployment ${id} to finish`,
    async () => {
      const d = (await api<DeploymentView>('GET', `/api/v1/deployments/${id}`)).body;
      return ['running', 'failed', 'cancelled'].includes(d.status) ? d : null;
    },
    120_000,
  );

const serve = async (app: string) =>
  (await routerGet(agent.router?.port ?? 0, '/', `${app}.${cp.ctx.config.router.baseDomain}`)).body;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-git-'));
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
  const db = await createTestDatabase('git');
  dropDb = db.drop;
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
  await dropDb();
  await gitd?.close();
  await rm(home, { recursive: true, force: true });
});

describe('git source', () => {
  it('builds the ref of an app created with a git source, rebuilds a new commit, rolls back to the first', async () => {
    const repo = await gitd.repo('hello');
    const sha1 = await repo.commit(procfileApp('hello v1'), 'first version');
    const created = await api<{ name: string }>('POST', '/api/v1/apps', {
      name: 'gitapp',
      git: { url: gitd.url('hello'), ref: 'main' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const src = await api<{ url: string; ref: string; credential: null }>('GET', '/api/v1/apps/gitapp/git');
    expect(src.body).toMatchObject({ url: gitd.url('hello'), ref: 'main', credential: null });

    const b1 = await api<DeploymentView>('POST', '/api/v1/apps/gitapp/git/builds');
    expect(b1.status, JSON.stringify(b1.body)).toBe(202);
    expect(b1.body.message).toBe(`${sha1.slice(0, 7)} first version`);
    expect(b1.body.commit).toEqual({ sha: sha1, message: 'first version' });
    const d1 = await finished(b1.body.id);
    expect(d1.status, d1.log.join('\n')).toBe('running');
    expect(await serve('gitapp')).toBe('hello v1');

    // A second commit, built through seed 002's route: the new SHA goes live.
    const sha2 = await repo.commit({ 'server.js': procfileApp('hello v2')['server.js'] as string }, 'second');
    const b2 = await api<DeploymentView>('POST', '/api/v1/services/gitapp/builds', {});
    expect(b2.status, JSON.stringify(b2.body)).toBe(202);
    const d2 = await finished(b2.body.id);
    expect(d2.status, d2.log.join('\n')).toBe('running');
    expect(await serve('gitapp')).toBe('hello v2');

    type Rel = { version: number; source: string; commit: { sha: string; message: string } | null };
    const rels = (await api<{ releases: Rel[] }>('GET', '/api/v1/apps/gitapp/releases')).body.releases;
    expect(rels.map((r) => [r.version, r.source, r.commit?.sha])).toEqual([
      [2, 'git', sha2],
      [1, 'git', sha1],
    ]);

    // Rollback to v1: a new release with the first commit.
    const rb = await api<DeploymentView>('POST', '/api/v1/apps/gitapp/rollback', { release: 1 });
    expect(rb.status, JSON.stringify(rb.body)).toBe(202);
    expect((await finished(rb.body.id)).status).toBe('running');
    expect(await serve('gitapp')).toBe('hello v1');
    const after = (await api<{ releases: Rel[] }>('GET', '/api/v1/apps/gitapp/releases')).body.releases;
    expect(after[0]).toMatchObject({ version: 3, commit: { sha: sha1, message: 'first version' } });

    // The mirror holds the fetched commits; the staging directories are gone.
    const appId = (await cp.ctx.apps.get('gitapp')).id;
    expect(await readdir(join(home, 'git', 'mirrors'))).toContain(`${appId}.git`);
    expect(await readdir(join(home, 'builds')).catch(() => [])).toEqual([]);
  }, 240_000);

  it('accepts seed 003 repo_url and seed 002 build_source, builds a tag and a commit id', async () => {
    const repo = await gitd.repo('shapes');
    const sha = await repo.commit(procfileApp('shapes'), 'shapes app');
    expect(
      (await api('POST', '/api/v1/apps', { name: 'repourl', repo_url: gitd.url('shapes'), branch: 'main' }))
        .status,
    ).toBe(201);
    expect(
      (
        await api('POST', '/api/v1/apps', {
          name: 'Build Source',
          slug: 'buildsrc',
          build_source: { type: 'git', repository: gitd.url('shapes'), branch: 'main' },
        })
      ).status,
    ).toBe(201);
    expect((await api<{ ref: string }>('GET', '/api/v1/apps/repourl/git')).body.ref).toBe('main');
    expect((await api<{ url: string }>('GET', '/api/v1/apps/buildsrc/git')).body.url).toBe(
      gitd.url('shapes'),
    );
    const byId = await api<DeploymentView>('POST', '/api/v1/apps/buildsrc/git/builds', { ref: sha });
    expect(byId.status, JSON.stringify(byId.body)).toBe(202);
    expect(byId.body.message?.startsWith(sha.slice(0, 7))).toBe(true);
    expect((await finished(byId.body.id)).status).toBe('running');
  }, 120_000);

  it('builds a repository with submodules (relative and absolute URLs), and deleting the app removes its repositories', async () => {
    const lib = await gitd.repo('libmod');
    await lib.commit({ 'lib.txt': 'from the submodule' }, 'lib');
    const other = await gitd.repo('othermod');
    await other.commit({ 'other.txt': 'absolute' }, 'other');
    const main = await gitd.repo('withsub');
    await main.commit(
      {
        ...procfileApp(''),
        'server.js':
          "const fs = require('node:fs');\nrequire('node:http').createServer((q, s) => s.end(fs.readFileSync('lib/lib.txt', 'utf8') + '+' + fs.readFileSync('vendor/other/other.txt', 'utf8'))).listen(process.env.PORT);\n",
      },
      'app',
    );
    await gitCmd(['submodule', '--quiet', 'add', gitd.url('libmod'), 'lib'], main.dir);
    await gitCmd(['submodule', '--quiet', 'add', gitd.url('othermod'), 'vendor/other'], main.dir);
    // lib by a URL relative to the superproject's (resolved against the app's repository URL)
    await gitCmd(['config', '--file', '.gitmodules', 'submodule.lib.url', '../libmod.git'], main.dir);
    await main.commit({}, 'submodules');
    expect((await api('POST', '/api/v1/apps', { name: 'subapp', git: gitd.url('withsub') })).status).toBe(
      201,
    );
    const b = await api<DeploymentView>('POST', '/api/v1/apps/subapp/git/builds');
    expect(b.status, JSON.stringify(b.body)).toBe(202);
    const d = await finished(b.body.id);
    expect(d.status, d.log.join('\n')).toBe('running');
    expect(await serve('subapp')).toBe('from the submodule+absolute');

    const id = (await cp.ctx.apps.get('subapp')).id;
    expect(await readdir(join(home, 'git', 'mirrors'))).toEqual(
      expect.arrayContaining([`${id}.git`, `${id}.modules`]),
    );
    expect((await api('DELETE', '/api/v1/apps/subapp')).status).toBe(204);
    const left = await readdir(join(home, 'git', 'mirrors'));
    expect(left.filter((n) => n.startsWith(id))).toEqual([]);
  }, 180_000);

  it('applies minipaas.yaml (processes, env, health check, resources) with each release; a bad one is a 4xx', async () => {
    const repo = await gitd.repo('declared');
    const server =
      "require('node:http').createServer((q, s) => s.end(q.url === '/up' ? 'ok' : process.env.GREETING)).listen(process.env.PORT);\n";
    const manifest = (greeting: string, web: number) =>
      `processes:\n  web: { instances: ${web} }\n  clock: { command: "node -e 'setInterval(() => {}, 1000)'", instances: 1 }\nenv:\n  GREETING: ${greeting}\n  RETRIES: 3\nhealthcheck: { path: /up }\nresources: { memoryMb: 300 }\n`;
    await repo.commit(
      { ...procfileApp(''), 'server.js': server, 'minipaas.yaml': manifest('hello from yaml', 2) },
      'declared v1',
    );
    expect((await api('POST', '/api/v1/apps', { name: 'declared', git: gitd.url('declared') })).status).toBe(
      201,
    );
    const d1 = await finished(
      (await api<DeploymentView>('POST', '/api/v1/apps/declared/git/builds')).body.id,
    );
    expect(d1.status, d1.log.join('\n')).toBe('running');
    expect(d1.log.join('\n')).toContain(
      'minipaas.yaml: processes web=2 clock=1; env GREETING, RETRIES; health check /up; resources memoryMb=300',
    );
    expect(await serve('declared')).toBe('hello from yaml');
    type App = {
      env: Record<string, string>;
      healthcheckPath: string;
      processes: Record<string, { instances: number }>;
    };
    const app1 = (await api<App>('GET', '/api/v1/apps/declared')).body;
    expect(app1.env).toMatchObject({ GREETING: 'hello from yaml', RETRIES: '3' });
    expect(app1.healthcheckPath).toBe('/up');
    expect(app1.processes).toMatchObject({ web: { instances: 2 }, clock: { instances: 1 } });
    const inst = (
      await api<{ instances: Array<{ processType: string; status: string }> }>(
        'GET',
        '/api/v1/apps/declared/instances',
      )
    ).body.instances;
    expect(inst.filter((i) => i.processType === 'web' && i.status === 'running')).toHaveLength(2);
    expect((await api<{ memoryMb: number }>('GET', '/api/v1/apps/declared/resources')).body.memoryMb).toBe(
      300,
    );

    // The next commit changes the declaration; the release after it carries the change.
    await repo.commit({ 'minipaas.yaml': manifest('changed in git', 1) }, 'declared v2');
    const d2 = await finished(
      (await api<DeploymentView>('POST', '/api/v1/apps/declared/git/builds')).body.id,
    );
    expect(d2.status, d2.log.join('\n')).toBe('running');
    expect(await serve('declared')).toBe('changed in git');
    expect((await api<App>('GET', '/api/v1/apps/declared')).body.processes.web?.instances).toBe(1);
    // A rollback brings v1's env back with its code.
    const rb = await finished(
      (await api<DeploymentView>('POST', '/api/v1/apps/declared/rollback', { release: 1 })).body.id,
    );
    expect(rb.status).toBe('running');
    expect(await serve('declared')).toBe('hello from yaml');

    // Bad declarations: refused before anything is queued.
    for (const bad of [
      'processes: { web: { instances: -1 } }\n',
      'env: { "1BAD": x }\n',
      'healthcheck: { path: up }\n',
      'resources: { memoryMb: 1 }\n',
      'processes: { constructor: {} }\n',
    ]) {
      await repo.commit({ 'minipaas.yaml': bad }, 'bad yaml');
      const r = await api<{ error: { message: string } }>('POST', '/api/v1/apps/declared/git/builds');
      expect(r.status, bad).toBe(400);
      expect(r.body.error.message).toMatch(/minipaas\.yaml/);
    }
  }, 240_000);

  it('refuses bad sources with a 4xx and stores or queues nothing', async () => {
    const bad: Array<[unknown, number, RegExp]> = [
      [{ name: 'bad1', git: { url: 'file:///etc' } }, 400, /only https, http, ssh and git/],
      [{ name: 'bad2', git: { url: '/var/lib/minipaas' } }, 400, /not a URL/],
      [{ name: 'bad3', git: { url: 'ext::sh -c id' } }, 400, /spaces|not a URL/],
      [{ name: 'bad4', git: { url: '--upload-pack=id' } }, 400, /must not start with "-"/],
      [{ name: 'bad5', git: { url: gitd.url('x'), ref: '--output=/tmp/x' } }, 400, /ref/],
      [{ name: 'bad6', git: { url: gitd.url('x'), ref: 'a..b' } }, 400, /ref/],
      [
        `{"name":"bad7","git":{"url":"${gitd.url('x')}","__proto__":{"ref":"x"}}}`,
        400,
        /__proto__|not valid JSON/,
      ],
      [{ name: 'bad8', git: { url: gitd.url('x'), constructor: 'x' } }, 400, /git\.constructor/],
      [
        { name: 'bad9', repo_url: gitd.url('a'), build_source: { type: 'git', repository: gitd.url('b') } },
        400,
        /different/,
      ],
      [{ name: 'bad10', git: { url: `https://example.com/${'a'.repeat(3000)}` } }, 400, /characters/],
    ];
    for (const [body, status, message] of bad) {
      const r = await api<{ error: { message: string } }>('POST', '/api/v1/apps', body);
      expect(r.status, JSON.stringify([body, r.body])).toBe(status);
      expect(r.body.error.message).toMatch(message);
    }
    const apps = (await api<{ apps: Array<{ name: string }> }>('GET', '/api/v1/apps')).body.apps;
    expect(apps.map((a) => a.name).filter((n) => n.startsWith('bad'))).toEqual([]);

    // A missing ref or repository: 422 before anything is queued.
    expect(
      (await api('POST', '/api/v1/apps', { name: 'nosuch', git: { url: gitd.url('nope') } })).status,
    ).toBe(201);
    const r = await api<{ error: { code: string; message: string } }>(
      'POST',
      '/api/v1/apps/nosuch/git/builds',
    );
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('MINIPAAS_ERR_GIT');
    const builds = (await api<{ builds: unknown[] }>('GET', '/api/v1/apps/nosuch/builds?all=true')).body
      .builds;
    expect(builds).toEqual([]);
    // An app without a git source.
    await api('POST', '/api/v1/apps', { name: 'plain' });
    expect((await api('POST', '/api/v1/apps/plain/git/builds')).status).toBe(409);
  }, 60_000);

  it('never shows a token given in the URL: stored sealed, redacted in answers and the deploy log', async () => {
    const token = 'ghp_SuperSecretToken1234567890';
    const put = await api<{ url: string; credential: string }>('PUT', '/api/v1/apps/plain/git', {
      url: `https://user:${token}@127.0.0.1:1/private.git`,
      ref: 'main',
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toMatchObject({ url: 'https://127.0.0.1:1/private.git', credential: 'token' });
    const r = await api<{ error: { message: string } }>('POST', '/api/v1/apps/plain/git/builds');
    expect(r.status).toBe(422);
    expect(JSON.stringify(r.body)).not.toContain(token);
    const row = await cp.ctx.store.db
      .selectFrom('git_sources' as never)
      .selectAll()
      .executeTakeFirst();
    expect(JSON.stringify(row)).not.toContain(token);
    // Two master key rotations (the first key leaves the ring): the credential was sealed again and opens.
    for (let i = 0; i < 2; i++) await rotateMasterKey(cp.ctx.store.db, secretBoxFor(cp.ctx.config));
    const src = await cp.ctx.git.get(await cp.ctx.apps.get('plain'));
    expect(src && cp.ctx.git.credential(src)).toEqual({ kind: 'token', value: `user:${token}` });
    // Nothing the platform wrote under its home holds the token.
    const files = await readdir(home, { recursive: true });
    for (const f of files) {
      const text = await readFile(join(home, f), 'utf8').catch(() => '');
      expect(text.includes(token), f).toBe(false);
    }
  }, 60_000);
});
