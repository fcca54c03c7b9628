/**
 * Migration 20261130000001_access_control.sql on a database that already holds data (a home from before
 * access control): its tokens become tokens of the owner user of team `default`, its projects move into
 * that team, and the admin token keeps working with the owner role.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testPostgresUrl } from '../../../test/helpers/postgres.ts';
import { createControlPlane } from '../src/server.ts';
import { hashToken } from '../src/services/token-service.ts';
import { loadMigrations, migrateUp } from '../src/store/migrator.ts';
import { MIGRATIONS_DIR } from '../src/store/store.ts';

if (!testPostgresUrl() && process.env.CI) throw new Error('CI needs the test PostgreSQL server');

let db: { url: string; drop(): Promise<void> };
let home: string;
const token = `mp_${randomBytes(24).toString('base64url')}`;

beforeAll(async () => {
  db = await createTestDatabase('accessmig');
  home = await mkdtemp(join(tmpdir(), 'mp-accessmig-'));
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const runner = {
      exec: async (t: string) => void (await client.query(t)),
      query: async <R>(t: string, p?: unknown[]) => (await client.query(t, p)).rows as R[],
    };
    // The schema as it was before access control.
    const before = (await loadMigrations(MIGRATIONS_DIR)).filter((m) => m.version < '20261130000001');
    await migrateUp(runner, before);
    await client.query(
      "INSERT INTO api_tokens (id, name, role, token_hash) VALUES ('t1', 'admin', 'owner', $1), ('t2', 'ci', 'developer', $2)",
      [hashToken(token), hashToken(`${token}x`)],
    );
    await client.query("INSERT INTO projects (id, name, slug) VALUES ('p1', 'Shop', 'shop')");
  } finally {
    await client.end();
  }
});

afterAll(async () => {
  await db?.drop();
  await rm(home, { recursive: true, force: true });
});

describe('the access-control migration on existing data', () => {
  it('gives existing tokens to the owner of team default and keeps the admin token working', async () => {
    const config = await loadConfig({ MINIPAAS_HOME: home, MINIPAAS_LOG_LEVEL: 'silent' });
    const cp = await createControlPlane({
      config: { ...config, databaseUrl: db.url },
      drivers: [new ProcessDriver(new AgentClient(join(home, 'no-agent.sock')))],
      logger: pino({ level: 'silent' }),
      reconcile: false,
      buildWorker: 'none',
    });
    try {
      expect(cp.createdAdminToken).toBeNull();
      const rows = await cp.ctx.store.db
        .selectFrom('api_tokens')
        .select(['id', 'user_id'])
        .orderBy('id')
        .execute();
      expect(rows).toEqual([
        { id: 't1', user_id: 'owner' },
        { id: 't2', user_id: 'owner' },
      ]);
      const projects = await cp.ctx.store.db
        .selectFrom('projects')
        .select(['slug', 'team_id'])
        .orderBy('slug')
        .execute();
      expect(projects).toEqual([
        { slug: 'default', team_id: 'default' },
        { slug: 'shop', team_id: 'default' },
      ]);
      const me = await cp.app.inject({
        method: 'GET',
        url: '/api/v1/whoami',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(me.json()).toMatchObject({
        token: { name: 'admin', role: 'owner' },
        user: { id: 'owner' },
        teams: [{ slug: 'default', role: 'owner' }],
      });
      const users = await cp.app.inject({
        method: 'GET',
        url: '/api/v1/users',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(users.statusCode).toBe(200);
    } finally {
      await cp.close();
    }
  });
});
