/**
 * The migrations through the real dbmate binary and through psql (the exported single file).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { MIGRATIONS_DIR, migrationSql } from '../src/index.ts';

const run = promisify(execFile);
const DBMATE = fileURLToPath(new URL('../../../node_modules/.bin/dbmate', import.meta.url));

let database: { url: string; drop(): Promise<void> };
let db: pg.Client;

beforeAll(async () => {
  database = await createTestDatabase('sqlm');
  db = new pg.Client({ connectionString: database.url });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await database?.drop();
});

async function dbmate(...args: string[]) {
  const url = `${database.url}?sslmode=disable`;
  return run(DBMATE, ['-u', url, '-d', MIGRATIONS_DIR, '--no-dump-schema', ...args]);
}

async function state() {
  const fns = await db.query("SELECT count(*)::int AS n FROM pg_proc WHERE proname LIKE 'minipaas\\_%'");
  const schema = await db.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'minipaas'");
  return { functions: fns.rows[0].n as number, schema: schema.rows[0].n === 1 };
}

const SEED_QUEUE = `
SELECT minipaas_queue_create('emails_q');
SELECT * FROM minipaas_queue_enqueue('emails_q', '{"email":"a@b.com"}'::jsonb);
SELECT * FROM minipaas_queue_dequeue('emails_q', 10);
SELECT minipaas_queue_ack('emails_q', ARRAY[1,2,3]);
SELECT minipaas_stream_create('activity_s');
SELECT * FROM minipaas_stream_publish('activity_s', '{"action":"signup"}'::jsonb);
SELECT * FROM minipaas_stream_consume('activity_s', 42, 25);
LISTEN "emails_q";
LISTEN "activity_s";
`;

describe('migrations with dbmate and psql', () => {
  it('dbmate up / down / up works and down removes everything', async () => {
    await dbmate('up');
    const up = await state();
    expect(up.schema).toBe(true);
    expect(up.functions).toBeGreaterThanOrEqual(28);
    await db.query(SEED_QUEUE);
    const status = await dbmate('status');
    expect(status.stdout).toMatch(/\[X\] 20261122000000_minipaas_sql\.sql/);

    await dbmate('down');
    expect(await state()).toEqual({ functions: 0, schema: false });
    const left = await db.query("SELECT count(*)::int AS n FROM pg_type WHERE typname LIKE 'queue_message%'");
    expect(left.rows[0].n).toBe(0);

    await dbmate('up');
    expect((await state()).functions).toBe(up.functions);
    await db.query(SEED_QUEUE);
    const r = await db.query("SELECT * FROM minipaas_queue_dequeue('emails_q', 10)");
    expect(r.rows).toHaveLength(0);
    await dbmate('down');
    expect(await state()).toEqual({ functions: 0, schema: false });
  });

  it('the exported single SQL file applies and removes with psql', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'minipaas-sql-'));
    try {
      await writeFile(join(dir, 'up.sql'), migrationSql('up'));
      await writeFile(join(dir, 'down.sql'), migrationSql('down'));
      const psql = (file: string) =>
        run('psql', [database.url, '-v', 'ON_ERROR_STOP=1', '-q', '-f', join(dir, file)]);
      await psql('up.sql');
      await psql('up.sql'); // idempotent
      await db.query(SEED_QUEUE);
      expect((await state()).schema).toBe(true);
      await psql('down.sql');
      expect(await state()).toEqual({ functions: 0, schema: false });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
