/**
 * Upgrading a MINIPAAS_HOME whose state is in PGlite (`db/`, before the embedded PostgreSQL server):
 * the first control-plane start on the embedded server moves every row once and renames `db/`; a
 * failed move changes nothing. Real PGlite data written by the store code, a real embedded server.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type MinipaasConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomePostgres } from '../../../test/helpers/postgres-server.ts';
import { createControlPlane } from '../src/server.ts';
import { ProjectService } from '../src/services/project-service.ts';
import { TokenService } from '../src/services/token-service.ts';
import { openStore, type Store } from '../src/store/store.ts';

const TABLES = ['projects', 'apps', 'releases', 'deployments', 'api_tokens', 'app_identities', 'addons'];

/** Every row of every platform table, as PostgreSQL renders it in JSON (exact values, ordered). */
async function snapshot(store: Store): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const t of TABLES) {
    const r = await sql<{ r: unknown }>`SELECT to_jsonb(x) AS r FROM ${sql.table(t)} x ORDER BY 1`.execute(
      store.db,
    );
    out[t] = r.rows.map((row) => row.r);
  }
  return out;
}

/** A home as an older MiniPaaS left it: PGlite in `db/` with projects, apps, releases, deployments, tokens. */
async function legacyHome(): Promise<{ home: string; token: string }> {
  const home = await mkdtemp(join(tmpdir(), 'mp-upgrade-'));
  const lite = await openStore({ dataDir: join(home, 'db') });
  try {
    await new ProjectService(lite.db).create({ name: 'Legacy', slug: 'legacy' });
    await new TokenService(lite.db).ensureAdminToken(join(home, 'admin-token'));
    await sql`INSERT INTO apps (id, project_id, name, status, processes, env, current_release, created_at)
      VALUES ('app1', 'default', 'shop', 'running', '{"web":{"command":"node s.js","instances":2}}',
              '{"GREETING":"grüß dich","EMPTY":""}', 2, '2026-01-02T03:04:05.123456Z')`.execute(lite.db);
    await sql`INSERT INTO releases (id, app_id, version, dir, stack, commands, source)
      VALUES ('r1', 'app1', 1, '/x/v1', 'node', '{"web":"node s.js"}', 'upload'),
             ('r2', 'app1', 2, '/x/v2', 'node', '{}', 'git')`.execute(lite.db);
    await sql`INSERT INTO deployments (id, app_id, release_version, status, source, log, finished_at)
      VALUES ('d1', 'app1', 1, 'succeeded', 'upload', '["----> one", "two \\"quoted\\""]', now()),
             ('d2', 'app1', 2, 'running', 'git', '[]', NULL)`.execute(lite.db);
    await sql`INSERT INTO app_identities (app_id, uid, gid) VALUES ('app1', 70001, 70001)`.execute(lite.db);
  } finally {
    await lite.close();
  }
  const token = (await readFile(join(home, 'admin-token'), 'utf8')).trim();
  return { home, token };
}

async function configFor(home: string): Promise<MinipaasConfig> {
  return loadConfig({ MINIPAAS_HOME: home, MINIPAAS_LOG_LEVEL: 'silent' });
}

function start(config: MinipaasConfig) {
  return createControlPlane({
    config,
    // No agent runs: nothing here reaches the runtime.
    drivers: [new ProcessDriver(new AgentClient(join(config.home, 'run', 'agent.sock')))],
    logger: pino({ level: 'silent' }),
    reconcile: false,
  });
}

describe('a PGlite home on its first start with the embedded server', () => {
  let home: string;
  let token: string;
  let stopPg: () => Promise<void> = async () => {};

  beforeAll(async () => {
    ({ home, token } = await legacyHome());
    stopPg = (await startHomePostgres(home)).stop;
  }, 120_000);

  afterAll(async () => {
    await stopPg();
    await rm(home, { recursive: true, force: true });
  });

  it('moves every row once, renames db/, and keeps serving the old token and data', async () => {
    const cp = await start(await configFor(home));
    let moved: Record<string, unknown[]>;
    try {
      expect(cp.createdAdminToken).toBeNull(); // the old token came along
      expect(cp.ctx.store.kind).toBe('postgres');
      // Before the token is used (using it records its last-used time).
      moved = await snapshot(cp.ctx.store);
      const apps = await cp.app.inject({
        method: 'GET',
        url: '/api/v1/apps',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(apps.statusCode, apps.body).toBe(200);
      expect(JSON.stringify(apps.json())).toContain('grüß dich');
    } finally {
      await cp.close();
    }
    expect(existsSync(join(home, 'db'))).toBe(false);
    const renamed = (await readdir(home)).filter((n) => n.startsWith('db.pglite-migrated-'));
    expect(renamed).toHaveLength(1);

    // Row for row what PGlite held.
    const lite = await openStore({ dataDir: join(home, renamed[0] as string) });
    try {
      expect(moved).toEqual(await snapshot(lite));
    } finally {
      await lite.close();
    }
    expect(moved.apps).toHaveLength(1);
    expect(moved.deployments).toHaveLength(2);
    expect(moved.projects).toHaveLength(2);

    // The next start finds nothing to move and the same data.
    const again = await start(await configFor(home));
    try {
      const next = await snapshot(again.ctx.store);
      for (const t of next.api_tokens as { last_used_at: unknown }[]) t.last_used_at = null;
      expect(next).toEqual(moved);
    } finally {
      await again.close();
    }
  });
});

describe('a PGlite home whose platform database already holds data', () => {
  it('stops with a message and leaves db/ untouched', async () => {
    const { home } = await legacyHome();
    const pg = await startHomePostgres(home);
    try {
      const target = await openStore({ databaseUrl: pg.server.superuserUrl() });
      await new ProjectService(target.db).create({ name: 'Newer', slug: 'newer' });
      await target.close();
      const before = await readdir(join(home, 'db'));

      await expect(start(await configFor(home))).rejects.toThrow(
        /cannot move the PGlite database .*already holds data \(table projects\).*Nothing was changed/,
      );
      expect(await readdir(join(home, 'db'))).toEqual(before);
      expect((await readdir(home)).some((n) => n.startsWith('db.pglite-migrated-'))).toBe(false);
      const check = await openStore({ databaseUrl: pg.server.superuserUrl() });
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM apps`.execute(check.db);
      await check.close();
      expect(rows[0]?.n).toBe(0);
    } finally {
      await pg.stop();
      await rm(home, { recursive: true, force: true });
    }
  });
});
