/**
 * The platform store: one Kysely instance over the Postgres dialect, backed by a PostgreSQL server (the
 * embedded one that `minipaas up` runs, or DATABASE_URL), or by PGlite for tests and for reading the
 * data of a home from before the embedded server (see pglite-upgrade.ts). Migrations run on open.
 * PGlite is imported only when it is used: it costs hundreds of MB.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { loadMigrations, migrateUp } from './migrator.ts';
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
   * With `databaseUrl`: keep retrying the first connection this long while the server is not up yet
   * (socket missing, connection refused, starting up, shutting down). Default 0: fail at once.
   */
  connectRetryMs?: number;
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
    const client = await connectWithRetry(pool, opts.connectRetryMs ?? 0);
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
  const { PGlite } = await import('@electric-sql/pglite');
  const { PgliteDialect } = await import('./pglite-dialect.ts');
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

/** Errors of a server that is not up yet (or restarting): worth another try. */
const TRANSIENT = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', '57P03', '57P01', '53300']);

async function connectWithRetry(pool: pg.Pool, retryMs: number): Promise<pg.PoolClient> {
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      return await pool.connect();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (!code || !TRANSIENT.has(code) || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
