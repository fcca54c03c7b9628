import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { migrate, pgExecutor, pgliteExecutor, type SqlExecutor } from '../src/index.ts';

/** A database the functional suite runs against, with the migrations applied. */
export interface Backend {
  db: SqlExecutor;
  /** A second, independent executor on the same database (another pool / the same PGlite). */
  other: SqlExecutor;
  close(): Promise<void>;
}

export interface BackendFactory {
  name: 'postgres' | 'pglite';
  open(): Promise<Backend>;
}

export const postgresBackend: BackendFactory = {
  name: 'postgres',
  async open() {
    const database = await createTestDatabase('sql');
    const pool = new pg.Pool({ connectionString: database.url, max: 10 });
    const pool2 = new pg.Pool({ connectionString: database.url, max: 10 });
    const db = pgExecutor(pool);
    await migrate(db);
    return {
      db,
      other: pgExecutor(pool2),
      async close() {
        await pool.end();
        await pool2.end();
        await database.drop();
      },
    };
  },
};

export const pgliteBackend: BackendFactory = {
  name: 'pglite',
  async open() {
    const lite = await PGlite.create();
    const db = pgliteExecutor(lite);
    await migrate(db);
    return {
      db,
      other: db,
      async close() {
        await lite.close();
      },
    };
  },
};

export const backends: BackendFactory[] = [postgresBackend, pgliteBackend];

/** Polls `check` until it returns a truthy value (bounded; no timing assertion). */
export async function eventually<T>(
  check: () => Promise<T> | T,
  what: string,
  limitMs = 30_000,
): Promise<NonNullable<T>> {
  const start = Date.now();
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
