/**
 * Dedicated Postgres add-ons through the API, in-process (`app.inject`), with real PostgreSQL servers
 * and a real node agent: the add-on gets a postmaster of its own (non-root, its own port and data
 * directory), the app reads and writes through DATABASE_URL, the platform server does not hold the
 * database, minipaasd adopts the server after a restart and its watcher restarts it after kill -9,
 * backups work, `minipaas down`'s teardown stops it, and destroying stops it and deletes its data.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import type { AddonView, BackupView } from '@minipaas/core';
import { type DeploymentView, loadConfig, type MinipaasConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOTES_APP, query } from '../../../test/helpers/notes-app.ts';
import { createTestDatabase, testPostgresUrl } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { rawTar } from '../../../test/helpers/tarball.ts';
import { stopDedicatedPostgres } from '../../cli/src/teardown.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

/** The pid in a cluster's postmaster.pid when that process is alive, else undefined. */
function postmasterPid(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return undefined;
  }
  return alive(pid) ? pid : undefined;
}

/** True when `pid` is a live, non-zombie process. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** The real uid of a process. */
function processUid(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const enabled = Boolean(testPostgresUrl() || process.env.CI);

describe.runIf(enabled)('dedicated Postgres add-ons', () => {
  let home: string;
  let config: MinipaasConfig;
  let agent: AgentHandle;
  let cp: ControlPlane | undefined;
  let auth: { authorization: string };
  let platformDb: { url: string; drop(): Promise<void> };
  let routerPort: number;
  let openControlPlane: () => Promise<ControlPlane>;
  let addon: AddonView;
  let dataDir: string;

  const plane = (): ControlPlane => {
    if (!cp) throw new Error('the control plane is closed');
    return cp;
  };
  const api = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    plane().app.inject({ method, url, headers: auth, ...(payload !== undefined ? { payload } : {}) });

  async function appSays(app: string, path: string, accept: (body: string) => boolean): Promise<string> {
    let last = '';
    for (let i = 0; i < 300; i++) {
      const res = await fetch(`http://127.0.0.1:${routerPort}/apps/${app}${path}`).catch(() => null);
      last = res ? await res.text() : 'unreachable';
      if (res && accept(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`app ${app} never answered as expected; last answer: ${last}`);
  }

  async function deployNotes(name: string): Promise<void> {
    expect((await api('POST', '/api/v1/apps', { name })).statusCode).toBe(201);
    const r = await plane().app.inject({
      method: 'POST',
      url: `/api/v1/apps/${name}/deploy?command=${encodeURIComponent('node app.js')}`,
      headers: { ...auth, 'content-type': 'application/gzip' },
      payload: rawTar([{ name: 'app.js', body: NOTES_APP }]),
    });
    expect(r.statusCode, r.body).toBe(202);
    const id = r.json<DeploymentView>().id;
    const d = await until('the deployment', async () => {
      const v = (await api('GET', `/api/v1/deployments/${id}`)).json<DeploymentView>();
      return ['running', 'failed', 'stopped'].includes(v.status) ? v : undefined;
    });
    expect(d.status, d.log.join('\n')).toBe('running');
  }

  /** Every live postmaster under `<home>/addons`. */
  const addonPostmasters = (): number[] =>
    existsSync(join(home, 'addons'))
      ? readdirSync(join(home, 'addons')).flatMap((n) => {
          const pid = postmasterPid(join(home, 'addons', n, 'postgres', 'data'));
          return pid === undefined ? [] : [pid];
        })
      : [];

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'mp-dedicated-'));
    const portMin = 23000 + Math.floor(Math.random() * 80) * 100;
    const pgPortMin = 41000 + Math.floor(Math.random() * 400) * 20;
    config = await loadConfig({
      MINIPAAS_HOME: home,
      MINIPAAS_APP_PORT_MIN: String(portMin),
      MINIPAAS_APP_PORT_MAX: String(portMin + 99),
      MINIPAAS_ROUTER_PORT: String(await freePort()),
      MINIPAAS_DEDICATED_PG_PORT_MIN: String(pgPortMin),
      MINIPAAS_DEDICATED_PG_PORT_MAX: String(pgPortMin + 19),
      MINIPAAS_STOP_GRACE_MS: '2000',
      MINIPAAS_LOG_LEVEL: 'silent',
    });
    const logger = pino({ level: 'silent' });
    agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
    routerPort = agent.router?.port ?? 0;
    platformDb = await createTestDatabase('dedicated');
    openControlPlane = () =>
      createControlPlane({
        config: { ...config, databaseUrl: platformDb.url },
        drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
        logger,
        reconcile: false,
      });
    cp = await openControlPlane();
    auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  }, 60_000);

  afterAll(async () => {
    await cp?.close();
    // Whatever a failed test left running: the same teardown `minipaas down` runs.
    const left = await stopDedicatedPostgres(home, 30_000, () => undefined);
    await agent?.close();
    await platformDb?.drop();
    await rm(home, { recursive: true, force: true });
    expect(left.failed).toEqual([]);
  });

  it('refuses bad input with a 4xx before any server is created', async () => {
    expect((await api('POST', '/api/v1/apps', { name: 'plain' })).statusCode).toBe(201);
    for (const [body, message] of [
      [{ type: 'postgres', dedicated: 'yes' }, /dedicated/],
      [{ type: 'redis', dedicated: true }, /unknown add-on type/],
      [{ type: 'postgres', name: 'Bad!', dedicated: true }, /invalid add-on name/],
    ] as const) {
      const r = await api('POST', '/api/v1/apps/plain/addons', body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(r.json().error.message).toMatch(message);
    }
    expect(
      (await api('POST', '/api/v1/apps/nope/addons', { type: 'postgres', dedicated: true })).statusCode,
    ).toBe(404);
    // every port of the range taken by another program: refused before a cluster is made
    const blockers: Server[] = [];
    try {
      for (let p = config.postgres.dedicatedPortMin; p <= config.postgres.dedicatedPortMax; p++) {
        const srv = createServer();
        await new Promise<void>((resolve) => {
          srv.once('error', () => resolve()); // already taken by someone else: just as good
          srv.listen(p, '127.0.0.1', () => resolve());
        });
        blockers.push(srv);
      }
      const full = await api('POST', '/api/v1/apps/plain/addons', { type: 'postgres', dedicated: true });
      expect(full.statusCode).toBe(409);
      expect(full.json().error.message).toMatch(/no free port .*dedicatedPortMin/);
    } finally {
      await Promise.all(blockers.map((b) => new Promise((r) => (b.listening ? b.close(r) : r(undefined)))));
    }
    expect(existsSync(join(home, 'addons'))).toBe(false);
    expect((await api('GET', '/api/v1/apps/plain/addons')).json()).toEqual({ addons: [] });
  });

  it('runs the add-on on a PostgreSQL server of its own, as a non-root user, on its own port', async () => {
    await deployNotes('notes');
    const r = await api('POST', '/api/v1/apps/notes/addons', { type: 'postgres', dedicated: true });
    expect(r.statusCode, r.body).toBe(201);
    addon = r.json<AddonView>();
    expect(addon).toMatchObject({
      name: 'postgres',
      dedicated: true,
      envVar: 'DATABASE_URL',
      host: '127.0.0.1',
    });
    expect(addon.port).toBeGreaterThanOrEqual(config.postgres.dedicatedPortMin);
    expect(addon.port).toBeLessThanOrEqual(config.postgres.dedicatedPortMax);
    expect(addon.url).toContain(':********@');

    dataDir = join(home, 'addons', addon.database, 'postgres', 'data');
    const pid = postmasterPid(dataDir);
    expect(pid).toBeDefined();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline).toContain(`port=${addon.port}`);
    expect(processUid(pid ?? 0)).not.toBe(0);
    expect(statSync(dataDir).uid).toBe(processUid(pid ?? 0));
    expect(
      statSync(join(home, 'addons', addon.database, 'postgres', 'superuser-password')).mode & 0o777,
    ).toBe(0o600);

    // the app was rolled with DATABASE_URL and reads and writes its database on that server
    await appSays('notes', '/?add=first', (b) => b === 'notes:first');
    expect(await appSays('notes', '/?add=second', (b) => b.startsWith('notes:'))).toBe('notes:first,second');
    const url = (await api('GET', '/api/v1/apps/notes/addons/postgres?reveal=true')).json<AddonView>().url;
    expect((await api('GET', '/api/v1/apps/notes?reveal=true')).json().env.DATABASE_URL).toBe(url);
    const [where] = await query<{ port: string; db: string }>(
      url,
      "SELECT current_setting('port') AS port, current_database() AS db",
    );
    expect(where).toEqual({ port: String(addon.port), db: addon.database });

    // the platform's server does not hold that database, and PUBLIC has no CONNECT on it
    expect(
      await query(platformDb.url, 'SELECT 1 FROM pg_database WHERE datname = $1', [addon.database]),
    ).toEqual([]);
    const admin = plane().ctx.addons.adminUrlFor(
      await plane().ctx.addons.get(await plane().ctx.apps.get('notes'), 'postgres'),
    );
    const [acl] = await query<{ ok: boolean }>(
      admin,
      "SELECT has_database_privilege('public', $1, 'CONNECT') AS ok",
      [addon.database],
    );
    expect(acl?.ok).toBe(false);

    // a second dedicated add-on under the same name is refused before a server is made
    const dup = await api('POST', '/api/v1/apps/notes/addons', {
      type: 'postgres',
      name: 'postgres',
      dedicated: true,
    });
    expect(dup.statusCode).toBe(409);
    expect(readdirSync(join(home, 'addons'))).toEqual([addon.database]);
  });

  it('is adopted after a minipaasd restart and restarted by the watcher after kill -9', async () => {
    const before = postmasterPid(dataDir);
    await plane().close();
    cp = undefined;
    expect(postmasterPid(dataDir)).toBe(before); // it outlives minipaasd
    cp = await openControlPlane();
    expect(await appSays('notes', '/', (b) => b.startsWith('notes:'))).toBe('notes:first,second');
    expect(postmasterPid(dataDir)).toBe(before); // adopted, not restarted

    process.kill(before ?? 0, 'SIGKILL');
    const after = await until('a new postmaster', () => {
      const pid = postmasterPid(dataDir);
      return pid !== undefined && pid !== before ? pid : undefined;
    });
    expect(processUid(after)).not.toBe(0);
    expect(await appSays('notes', '/?add=third', (b) => b.startsWith('notes:'))).toBe(
      'notes:first,second,third',
    );
  });

  it('backs up the dedicated database and restores it', async () => {
    const url = (await api('GET', '/api/v1/apps/notes/addons/postgres?reveal=true')).json<AddonView>().url;
    const r = await api('POST', '/api/v1/backups', { app: 'notes', addon: 'postgres' });
    expect(r.statusCode, r.body).toBe(201);
    const backup = r.json<BackupView>();
    expect(backup.file).toMatch(/^addon-notes\.postgres-/);
    await query(url, 'DELETE FROM notes');
    const restored = await api('POST', '/api/v1/apps/notes/addons/postgres/restore', { backup: backup.file });
    expect(restored.statusCode, restored.body).toBe(200);
    const rows = await query<{ body: string }>(url, 'SELECT body FROM notes ORDER BY body');
    expect(rows.map((x) => x.body)).toEqual(['first', 'second', 'third']);
  });

  it("is stopped by minipaas down's teardown, and started again by the next minipaasd", async () => {
    await plane().close();
    cp = undefined;
    const pid = postmasterPid(dataDir);
    const lines: string[] = [];
    const res = await stopDedicatedPostgres(home, 30_000, (l) => lines.push(l));
    expect(res).toEqual({ stopped: [pid], failed: [] });
    expect(lines.join('\n')).toContain(addon.database);
    expect(postmasterPid(dataDir)).toBeUndefined();

    cp = await openControlPlane();
    await until('the server to be started again', () => postmasterPid(dataDir));
    expect(await appSays('notes', '/', (b) => b.startsWith('notes:'))).toBe('notes:first,second,third');
  });

  it('destroy stops the server and deletes its data; deleting an app destroys its dedicated add-on', async () => {
    const pid = postmasterPid(dataDir) ?? 0;
    expect((await api('DELETE', '/api/v1/apps/notes/addons/postgres')).statusCode).toBe(400);
    expect((await api('DELETE', '/api/v1/apps/notes/addons/postgres?confirm=postgres')).statusCode).toBe(204);
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(home, 'addons', addon.database))).toBe(false);
    expect((await api('GET', '/api/v1/apps/notes')).json().env).not.toHaveProperty('DATABASE_URL');

    const r = await api('POST', '/api/v1/apps/plain/addons', { type: 'postgres', dedicated: true });
    expect(r.statusCode, r.body).toBe(201);
    const plainDir = join(home, 'addons', r.json<AddonView>().database);
    const plainPid = postmasterPid(join(plainDir, 'postgres', 'data')) ?? 0;
    expect(alive(plainPid)).toBe(true);
    expect((await api('DELETE', '/api/v1/apps/plain')).statusCode).toBe(204);
    expect(alive(plainPid)).toBe(false);
    expect(existsSync(plainDir)).toBe(false);
    expect(addonPostmasters()).toEqual([]);
  });
});
