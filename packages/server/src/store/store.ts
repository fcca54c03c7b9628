/**
 * The platform store: one Kysely instance over the Postgres dialect, backed by embedded PGlite
 * (default, under MINIPAAS_HOME/db) or a Postgres server (DATABASE_URL). Migrations run on open.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { loadMigrations, migrateUp } from './migrator.ts';
import { PgliteDialect } from './pglite-dialect.ts';
import type { Database } from './schema.ts';

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations');

export interface Store {
  db: Kysely<Database>;
  kind: 'pglite' | 'postgres';
  /** Cheap liveness check used by /health/ready. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** Postgres server URL; when unset, PGlite at `dataDir`. */
  databaseUrl?: string | undefined;
  /** PGlite data directory (ignored with databaseUrl). `memory://` for an in-memory database. */
  dataDir?: string;
  /**
   * Called when an idle pooled connection fails (server restart, admin termination). The pool drops the
   * connection and opens a new one on the next query; without a listener such an error would crash the process.
   */
  onConnectionError?: (err: Error) => void;
}

export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 10 });
    pool.on('error', (err) => opts.onConnectionError?.(err));
    const migrations = await loadMigrations(MIGRATIONS_DIR);
    const client = await pool.connect();
    try {
      // One migrator at a time across processes sharing the database.
      await client.query('SELECT pg_advisory_lock(7070001)');
      await migrateUp(
        {
          exec: async (t) => void (await client.query(t)),
          query: async (t, p) => (await client.query(t, p)).rows,
        },
        migrations,
      );
      await client.query('SELECT pg_advisory_unlock(7070001)');
    } finally {
      client.release();
    }
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return {
      db,
      kind: 'postgres',
      ping: async () => void (await sql`select 1`.execute(db)),
      close: () => db.destroy(),
    };
  }
  const dataDir = opts.dataDir ?? 'memory://';
  if (!dataDir.startsWith('memory://')) await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const lite = await PGlite.create(dataDir);
  await migrateUp(
    {
      exec: async (t) => void (await lite.exec(t)),
      query: async <R>(t: string, p?: unknown[]) => (await lite.query<R>(t, p)).rows,
    },
    await loadMigrations(MIGRATIONS_DIR),
  );
  const db = new Kysely<Database>({ dialect: new PgliteDialect(lite) });
  return {
    db,
    kind: 'pglite',
    ping: async () => void (await sql`select 1`.execute(db)),
    close: () => db.destroy(),
  };
}
