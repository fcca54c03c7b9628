/**
 * Postgres add-ons through the API, in-process (`app.inject`), against a real Postgres server and a
 * real node agent: an app reads and writes its own database through DATABASE_URL, another app's
 * role cannot connect to it, bad input changes nothing, destroying drops database and role.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import type { AddonView, BackupView } from '@minipaas/core';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOTES_APP, query } from '../../../test/helpers/notes-app.ts';
import { createTestDatabase, testPostgresUrl } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { rawTar } from '../../../test/helpers/tarball.ts';
import { BackupScheduler } from '../src/backups/backup-scheduler.ts';
import { pgRestore } from '../src/backups/pg-tools.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

const enabled = Boolean(testPostgresUrl() || process.env.CI);

describe.runIf(enabled)('Postgres add-ons', () => {
  let home: string;
  let agent: AgentHandle;
  let cp: ControlPlane;
  let auth: { authorization: string };
  let platformDb: { url: string; drop(): Promise<void> };
  let routerPort: number;
  let openControlPlane: () => Promise<ControlPlane>;

  const api = (method: 'GET' | 'POST' | 'DELETE' | 'PATCH', url: string, payload?: object) =>
    cp.app.inject({ method, url, headers: auth, ...(payload !== undefined ? { payload } : {}) });

  async function waitDeployment(id: string): Promise<DeploymentView> {
    for (let i = 0; i < 600; i++) {
      const d = (await api('GET', `/api/v1/deployments/${id}`)).json<DeploymentView>();
      if (['running', 'failed', 'stopped'].includes(d.status)) return d;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error('deployment did not finish');
  }

  /** GETs the app through the router until `accept(body)` (the app restarts when its env changes). */
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
    const r = await cp.app.inject({
      method: 'POST',
      url: `/api/v1/apps/${name}/deploy?command=${encodeURIComponent('node app.js')}`,
      headers: { ...auth, 'content-type': 'application/gzip' },
      payload: rawTar([{ name: 'app.js', body: NOTES_APP }]),
    });
    expect(r.statusCode, r.body).toBe(202);
    const d = await waitDeployment(r.json<DeploymentView>().id);
    expect(d.status, d.log.join('\n')).toBe('running');
  }

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'mp-addons-'));
    const portMin = 23000 + Math.floor(Math.random() * 80) * 100;
    const config = await loadConfig({
      MINIPAAS_HOME: home,
      MINIPAAS_APP_PORT_MIN: String(portMin),
      MINIPAAS_APP_PORT_MAX: String(portMin + 99),
      MINIPAAS_ROUTER_PORT: String(await freePort()),
      MINIPAAS_STOP_GRACE_MS: '2000',
      MINIPAAS_LOG_LEVEL: 'silent',
    });
    const logger = pino({ level: 'silent' });
    agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
    routerPort = agent.router?.port ?? 0;
    platformDb = await createTestDatabase('addons');
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
    await agent?.close();
    await platformDb?.drop();
    await rm(home, { recursive: true, force: true });
  });

  it('refuses bad input with a 4xx and changes nothing', async () => {
    expect((await api('POST', '/api/v1/apps', { name: 'plain' })).statusCode).toBe(201);
    const cases: Array<[object, number, RegExp]> = [
      [{ type: 'redis' }, 400, /unknown add-on type "redis"/],
      [{}, 400, /type/],
      [{ type: 'postgres', name: 'constructor' }, 400, /invalid add-on name/],
      [{ type: 'postgres', name: '__proto__' }, 400, /invalid add-on name/],
      [{ type: 'postgres', name: '../etc' }, 400, /invalid add-on name/],
      [{ type: 'postgres', name: 'Main' }, 400, /invalid add-on name/],
      [{ type: 'postgres', name: 'a'.repeat(31) }, 400, /invalid add-on name/],
      [{ type: 'postgres', name: 'x"; DROP ROLE postgres; --' }, 400, /invalid add-on name/],
      [{ type: 'postgres', extra: 1 }, 400, /extra/],
      [{ type: 'postgres', dedicated: 'yes' }, 400, /dedicated/],
    ];
    for (const [body, status, message] of cases) {
      const r = await api('POST', '/api/v1/apps/plain/addons', body);
      expect(r.statusCode, JSON.stringify(body)).toBe(status);
      expect(r.json().error.message).toMatch(message);
    }
    expect((await api('POST', '/api/v1/apps/nope/addons', { type: 'postgres' })).statusCode).toBe(404);
    expect((await api('GET', '/api/v1/apps/plain/addons/constructor')).statusCode).toBe(400);
    expect((await api('GET', '/api/v1/apps/plain/addons/missing')).statusCode).toBe(404);
    expect((await api('DELETE', '/api/v1/apps/plain/addons/missing?confirm=missing')).statusCode).toBe(404);
    expect((await api('GET', '/api/v1/apps/plain/addons')).json()).toEqual({ addons: [] });
    expect((await api('GET', '/api/v1/apps/plain')).json().env).toEqual({});
    const dbs = await query(
      platformDb.url,
      "SELECT datname FROM pg_database WHERE datname LIKE 'mp\\_plain\\_%'",
    );
    expect(dbs).toEqual([]);
  });

  it('gives an app its own database through DATABASE_URL, and another app cannot connect to it', async () => {
    await deployNotes('notes');
    expect(await appSays('notes', '/', (b) => b.startsWith('error:'))).toMatch(/error:/);

    const r = await api('POST', '/api/v1/apps/notes/addons', { type: 'postgres' });
    expect(r.statusCode, r.body).toBe(201);
    const addon = r.json<AddonView>();
    expect(addon).toMatchObject({ name: 'postgres', type: 'postgres', app: 'notes', envVar: 'DATABASE_URL' });
    expect(addon.database).toMatch(/^mp_notes_postgres_[0-9a-f]{8}$/);
    expect(addon.url).toContain(':********@');

    // the app was rolled with DATABASE_URL and reads and writes its database
    await appSays('notes', '/?add=first', (b) => b === 'notes:first');
    expect(await appSays('notes', '/?add=second', (b) => b.startsWith('notes:'))).toBe('notes:first,second');

    const info = (await api('GET', '/api/v1/apps/notes/addons/postgres')).json<AddonView>();
    expect(info.url).toContain('********');
    const revealed = (await api('GET', '/api/v1/apps/notes/addons/postgres?reveal=true')).json<AddonView>();
    expect(revealed.url).not.toContain('********');
    // DATABASE_URL is a secret: masked in the app's answer, the URL only with ?reveal=true
    const shown = (await api('GET', '/api/v1/apps/notes')).json();
    expect(shown.env.DATABASE_URL).toBe('••••');
    expect(shown.secrets).toContain('DATABASE_URL');
    const env = (await api('GET', '/api/v1/apps/notes?reveal=true')).json().env;
    expect(env.DATABASE_URL).toBe(revealed.url);
    // The role's password is stored sealed in the add-ons table, and the app's env holds it sealed too.
    const password = decodeURIComponent(new URL(revealed.url).password);
    const stored = await cp.ctx.store.db.selectFrom('addons').select('password').execute();
    expect(stored.every((s) => s.password.startsWith('mp1.'))).toBe(true);
    const apps = await cp.ctx.store.db.selectFrom('apps').select('env').execute();
    expect(JSON.stringify([stored, apps])).not.toContain(password);
    expect((await query<{ body: string }>(revealed.url, 'SELECT body FROM notes ORDER BY 1')).length).toBe(2);

    // a duplicate name is refused; a second add-on gets <NAME>_URL
    const dup = await api('POST', '/api/v1/apps/notes/addons', { type: 'postgres', name: 'postgres' });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error.message).toMatch(/already has an add-on named "postgres"/);
    const second = await api('POST', '/api/v1/apps/notes/addons', { type: 'postgres', name: 'cache-db' });
    expect(second.statusCode, second.body).toBe(201);
    expect(second.json().envVar).toBe('CACHE_DB_URL');
    const list = (await api('GET', '/api/v1/apps/notes/addons')).json<{ addons: AddonView[] }>().addons;
    expect(list.map((a) => a.name)).toEqual(['postgres', 'cache-db']);

    // another app's role, pointed at the first app's database, is refused by CONNECT privileges
    expect((await api('POST', '/api/v1/apps', { name: 'other' })).statusCode).toBe(201);
    const other = await api('POST', '/api/v1/apps/other/addons', { type: 'postgres' });
    expect(other.statusCode, other.body).toBe(201);
    const otherUrl = (await api('GET', '/api/v1/apps/other/addons/postgres?reveal=true')).json<AddonView>()
      .url;
    const intruder = new URL(otherUrl);
    intruder.pathname = `/${addon.database}`;
    await expect(query(intruder.toString(), 'SELECT 1')).rejects.toThrow(/permission denied for database/);
    // nor through PUBLIC: the role has no other grants
    const crossCheck = await query<{ ok: boolean }>(
      platformDb.url,
      'SELECT has_database_privilege($1, $2, $3) AS ok',
      [new URL(otherUrl).username, addon.database, 'CONNECT'],
    );
    expect(crossCheck[0]?.ok).toBe(false);

    // destroy needs the confirmation, then drops database and role and removes the env var
    const refused = await api('DELETE', '/api/v1/apps/notes/addons/cache-db');
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.message).toMatch(/confirm/);
    const wrong = await api('DELETE', '/api/v1/apps/notes/addons/cache-db?confirm=postgres');
    expect(wrong.statusCode).toBe(400);
    const cacheDb = second.json<AddonView>().database;
    expect(
      await query(platformDb.url, 'SELECT 1 FROM pg_database WHERE datname = $1', [cacheDb]),
    ).toHaveLength(1);
    expect((await api('DELETE', '/api/v1/apps/notes/addons/cache-db?confirm=cache-db')).statusCode).toBe(204);
    expect(
      await query(platformDb.url, 'SELECT 1 FROM pg_database WHERE datname = $1', [cacheDb]),
    ).toHaveLength(0);
    expect(await query(platformDb.url, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [cacheDb])).toHaveLength(
      0,
    );
    expect((await api('GET', '/api/v1/apps/notes')).json().env).not.toHaveProperty('CACHE_DB_URL');

    // deleting an app destroys its add-ons
    const otherDb = other.json<AddonView>().database;
    expect((await api('DELETE', '/api/v1/apps/other')).statusCode).toBe(204);
    expect(
      await query(platformDb.url, 'SELECT 1 FROM pg_database WHERE datname = $1', [otherDb]),
    ).toHaveLength(0);
  });

  it('backs up an add-on database, and a restore brings deleted rows back', async () => {
    const url = (await api('GET', '/api/v1/apps/notes/addons/postgres?reveal=true')).json<AddonView>().url;
    const bad = await api('POST', '/api/v1/backups', { app: 'notes' });
    expect(bad.statusCode).toBe(400);
    const r = await api('POST', '/api/v1/backups', { app: 'notes', addon: 'postgres' });
    expect(r.statusCode, r.body).toBe(201);
    const backup = r.json<BackupView>();
    expect(backup.file).toMatch(/^addon-notes\.postgres-\d{8}T\d{6}Z\.dump$/);
    expect(backup.path).toBe(join(home, 'backups', backup.file));
    const list = (await api('GET', '/api/v1/backups')).json<{ backups: BackupView[] }>().backups;
    expect(list.map((b) => b.file)).toContain(backup.file);

    await query(url, 'DELETE FROM notes');
    await query(url, "INSERT INTO notes VALUES ('after-backup')");
    for (const [file, message] of [
      ['../../etc/passwd', /file name/],
      ['addon-notes.postgres-20000101T000000Z.dump', /no backup named/],
    ] as const) {
      const refused = await api('POST', '/api/v1/apps/notes/addons/postgres/restore', { backup: file });
      expect(refused.statusCode).toBeGreaterThanOrEqual(400);
      expect(refused.statusCode).toBeLessThan(500);
      expect(refused.json().error.message).toMatch(message);
    }
    const restored = await api('POST', '/api/v1/apps/notes/addons/postgres/restore', { backup: backup.file });
    expect(restored.statusCode, restored.body).toBe(200);
    const rows = await query<{ body: string }>(url, 'SELECT body FROM notes ORDER BY body');
    expect(rows.map((x) => x.body)).toEqual(['first', 'second']);
    // the restored table belongs to the add-on's own role, and the app keeps working
    const owner = await query<{ o: string }>(
      url,
      "SELECT tableowner AS o FROM pg_tables WHERE tablename = 'notes'",
    );
    expect(owner[0]?.o).toBe(new URL(url).username);
    expect(await appSays('notes', '/', (b) => b.startsWith('notes:'))).toBe('notes:first,second');

    // another app's add-on gets this data only when asked for explicitly; a refusal changes nothing
    expect((await api('POST', '/api/v1/apps', { name: 'staging' })).statusCode).toBe(201);
    const staging = await api('POST', '/api/v1/apps/staging/addons', { type: 'postgres' });
    expect(staging.statusCode, staging.body).toBe(201);
    const stagingUrl = (
      await api('GET', '/api/v1/apps/staging/addons/postgres?reveal=true')
    ).json<AddonView>().url;
    const cross = await api('POST', '/api/v1/apps/staging/addons/postgres/restore', { backup: backup.file });
    expect(cross.statusCode).toBe(400);
    expect(cross.json().error.message).toMatch(/backup of notes\.postgres, not of staging\.postgres/);
    expect(await query(stagingUrl, "SELECT 1 FROM pg_tables WHERE tablename = 'notes'")).toHaveLength(0);
    const copied = await api('POST', '/api/v1/apps/staging/addons/postgres/restore', {
      backup: backup.file,
      fromOther: true,
    });
    expect(copied.statusCode, copied.body).toBe(200);
    expect(
      (await query<{ body: string }>(stagingUrl, 'SELECT body FROM notes ORDER BY body')).map((x) => x.body),
    ).toEqual(['first', 'second']);
    expect((await api('DELETE', '/api/v1/apps/staging')).statusCode).toBe(204);
  });

  it('installs @minipaas/sql into an add-on database, owned by the add-on role', async () => {
    const url = (await api('GET', '/api/v1/apps/notes/addons/postgres?reveal=true')).json<AddonView>().url;
    for (let i = 0; i < 2; i++) {
      const r = await api('POST', '/api/v1/apps/notes/addons/postgres/sql-install', {});
      expect(r.statusCode, r.body).toBe(200);
    }
    const owner = await query<{ o: string }>(
      url,
      "SELECT pg_get_userbyid(nspowner) AS o FROM pg_namespace WHERE nspname = 'minipaas'",
    );
    expect(owner[0]?.o).toBe(new URL(url).username);
    expect((await api('POST', '/api/v1/apps/notes/addons/nope/sql-install', {})).statusCode).toBe(404);
  });

  it('backup → destroy → restore into a new add-on of the same name brings the rows back', async () => {
    const old = (await api('GET', '/api/v1/apps/notes/addons/postgres?reveal=true')).json<AddonView>();
    await query(old.url, "INSERT INTO notes VALUES ('third')");
    // three backups taken in the same second get distinct names, and the list shows the newest first
    const second = new Date('2026-11-23T10:00:00Z');
    const same = await Promise.all(
      [1, 2, 3].map(() => cp.ctx.backups.backupAddon('notes', 'postgres', second)),
    );
    expect(same.map((b) => b.file).sort()).toEqual([
      'addon-notes.postgres-20261123T100000Z-2.dump',
      'addon-notes.postgres-20261123T100000Z-3.dump',
      'addon-notes.postgres-20261123T100000Z.dump',
    ]);
    const listed = (await cp.ctx.backups.list()).filter((b) => b.file.includes('20261123T100000Z'));
    expect(listed.map((b) => b.file)[0]).toBe('addon-notes.postgres-20261123T100000Z-3.dump');
    // drop the earlier backups of this add-on so the restore below can only pick the next one
    for (const b of (await cp.ctx.backups.list()).filter((x) => x.name === 'notes.postgres'))
      await rm(b.path);
    const r = await api('POST', '/api/v1/backups', { app: 'notes', addon: 'postgres' });
    expect(r.statusCode, r.body).toBe(201);
    const backup = r.json<BackupView>();

    expect((await api('DELETE', '/api/v1/apps/notes/addons/postgres?confirm=postgres')).statusCode).toBe(204);
    expect(await query(platformDb.url, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [old.role])).toHaveLength(
      0,
    );
    expect((await api('GET', '/api/v1/apps/notes')).json().env).not.toHaveProperty('DATABASE_URL');

    const created = await api('POST', '/api/v1/apps/notes/addons', { type: 'postgres', name: 'postgres' });
    expect(created.statusCode, created.body).toBe(201);
    const fresh = (await api('GET', '/api/v1/apps/notes/addons/postgres?reveal=true')).json<AddonView>();
    expect(fresh.envVar).toBe('DATABASE_URL');
    expect(fresh.database).not.toBe(old.database);
    expect(fresh.role).not.toBe(old.role);
    await expect(query(fresh.url, 'SELECT body FROM notes')).rejects.toThrow(/does not exist/);

    const restored = await api('POST', '/api/v1/apps/notes/addons/postgres/restore', { backup: backup.file });
    expect(restored.statusCode, restored.body).toBe(200);
    expect(restored.json().restored.file).toBe(backup.file);

    // the rows are back, read through the new DATABASE_URL (directly and by the rolled app)
    const rows = await query<{ body: string }>(fresh.url, 'SELECT body FROM notes ORDER BY body');
    expect(rows.map((x) => x.body)).toEqual(['first', 'second', 'third']);
    expect((await api('GET', '/api/v1/apps/notes?reveal=true')).json().env.DATABASE_URL).toBe(fresh.url);
    expect(await appSays('notes', '/', (b) => b.startsWith('notes:'))).toBe('notes:first,second,third');

    // everything restored belongs to the new role, and no other role was granted anything
    const owners = await query<{ kind: string; name: string; owner: string; acl: string | null }>(
      fresh.url,
      `SELECT 'table' AS kind, c.relname AS name, pg_get_userbyid(c.relowner) AS owner, c.relacl::text AS acl
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'minipaas')
       UNION ALL
       SELECT 'schema', nspname, pg_get_userbyid(nspowner), nspacl::text
         FROM pg_namespace WHERE nspname IN ('public', 'minipaas')
       UNION ALL
       SELECT 'function', p.proname, pg_get_userbyid(p.proowner), p.proacl::text
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'minipaas'`,
    );
    expect(owners.map((o) => o.name)).toContain('notes');
    expect(owners.map((o) => o.name)).toContain('minipaas');
    for (const o of owners) {
      expect(o.owner, `${o.kind} ${o.name}`).toBe(fresh.role);
      // an ACL, when set, names the new role only (no PUBLIC "=..." entry, no other role)
      for (const entry of (o.acl ?? '{}').replace(/[{}"]/g, '').split(',').filter(Boolean))
        expect(entry, `${o.kind} ${o.name}`).toMatch(new RegExp(`^${fresh.role}=[a-zA-Z*]+/${fresh.role}$`));
    }
    // the new database is still closed to PUBLIC (the restore touched no database-level grant)
    const [dbAcl] = await query<{ acl: string }>(
      platformDb.url,
      'SELECT datacl::text AS acl FROM pg_database WHERE datname = $1',
      [fresh.database],
    );
    expect(dbAcl?.acl).toContain(`${fresh.role}=`);
    expect(dbAcl?.acl).not.toMatch(/[{,]=/);
    expect(dbAcl?.acl).not.toContain(old.role);
  });

  it('backs up the platform database; restoring it brings a deleted app back', async () => {
    expect((await api('POST', '/api/v1/apps', { name: 'keepme' })).statusCode).toBe(201);
    const r = await api('POST', '/api/v1/backups', {});
    expect(r.statusCode, r.body).toBe(201);
    const backup = r.json<BackupView>();
    expect(backup.kind).toBe('platform');
    expect((await api('DELETE', '/api/v1/apps/keepme')).statusCode).toBe(204);
    expect((await api('GET', '/api/v1/apps/keepme')).statusCode).toBe(404);
    // an add-on restore refuses a platform dump
    const wrong = await api('POST', '/api/v1/apps/notes/addons/postgres/restore', { backup: backup.file });
    expect(wrong.statusCode).toBe(400);
    // the platform database is restored with the control plane stopped (what `minipaas restore` does)
    await cp.close();
    await pgRestore(platformDb.url, backup.path, home, false);
    cp = await openControlPlane();
    expect((await api('GET', '/api/v1/apps/keepme')).statusCode).toBe(200);
  });

  it('takes one scheduled platform backup a day after the set time and keeps the newest `keep`', async () => {
    let now = new Date(2031, 0, 1, 2, 59);
    const scheduler = new BackupScheduler({
      backups: cp.ctx.backups,
      schedule: '03:00',
      keep: 2,
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    expect(await scheduler.tick()).toBeNull();
    now = new Date(2031, 0, 1, 3, 1);
    const first = await scheduler.tick();
    expect(first).toMatch(/^platform-/);
    now = new Date(2031, 0, 1, 23, 0);
    expect(await scheduler.tick()).toBeNull();
    now = new Date(2031, 0, 2, 3, 0);
    const second = await scheduler.tick();
    now = new Date(2031, 0, 3, 4, 0);
    const third = await scheduler.tick();
    const platform = (await cp.ctx.backups.list()).filter((b) => b.kind === 'platform').map((b) => b.file);
    expect(platform).toEqual([third, second]);
    await expect(
      new BackupScheduler({
        backups: cp.ctx.backups,
        schedule: 'off',
        keep: 1,
        log: pino(),
        now: () => now,
      }).tick(),
    ).resolves.toBeNull();
  });
});
