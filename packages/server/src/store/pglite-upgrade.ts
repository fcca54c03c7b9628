/**
 * The one-time move of a home's PGlite database (`MINIPAAS_HOME/db`, the store before the embedded
 * PostgreSQL server) into the platform database on the server: PGlite is opened (imported only here),
 * migrated to the latest schema, and every row of every platform table is copied in one transaction;
 * then `db/` is renamed `db.pglite-migrated-<timestamp>`. On any failure nothing is changed: the
 * transaction rolls back, `db/` stays, and the error says what to do. See docs/decisions/0005.
 */
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import pg from 'pg';
import type { Logger } from 'pino';
import { loadMigrations, migrateUp } from './migrator.ts';
import { MIGRATIONS_DIR } from './store.ts';

export interface PgliteUpgradeOptions {
  /** The PGlite data directory (`MINIPAAS_HOME/db`). */
  pgliteDir: string;
  /** URL of the (migrated) platform database on the PostgreSQL server. */
  databaseUrl: string;
  log: Logger;
  /** Clock for the renamed directory's name (tests). */
  now?: () => Date;
}

export interface PgliteUpgradeResult {
  /** Rows copied per table. */
  moved: Record<string, number>;
  /** Where `db/` was moved. */
  renamedTo: string;
}

/** Rows inserted by the migrations themselves (the default project): a fresh database may hold them. */
const SEEDED: Record<string, string> = { projects: "id = 'default'", teams: "id = 'default'" };
const BATCH = 500;

/** True when `dir` holds a PGlite (PostgreSQL) data directory. */
export function hasPgliteData(dir: string): boolean {
  return existsSync(join(dir, 'PG_VERSION'));
}

/**
 * Moves the PGlite data at `pgliteDir` into the server database when there is any; undefined when
 * there was nothing to move. Throws a readable error and changes nothing when the move fails.
 */
export async function upgradeFromPglite(
  opts: PgliteUpgradeOptions,
): Promise<PgliteUpgradeResult | undefined> {
  const { pgliteDir, log } = opts;
  if (!hasPgliteData(pgliteDir)) return undefined;
  const fail = (step: string, err: unknown): never => {
    throw new MinipaasError(
      'MINIPAAS_ERR_INTERNAL',
      `cannot move the PGlite database ${pgliteDir} into the embedded PostgreSQL server (${step}): ${(err as Error).message}. Nothing was changed: ${pgliteDir} is untouched and the move is tried again on the next start; to start with an empty platform database instead, move ${pgliteDir} elsewhere`,
    );
  };
  log.info({ from: pgliteDir }, 'moving the PGlite database into the embedded PostgreSQL server');

  const { PGlite } = await import('@electric-sql/pglite');
  let lite: InstanceType<typeof PGlite>;
  try {
    lite = await PGlite.create(pgliteDir);
  } catch (err) {
    return fail('opening it with PGlite', err);
  }
  const target = new pg.Client({ connectionString: opts.databaseUrl });
  const moved: Record<string, number> = {};
  try {
    try {
      await migrateUp(
        {
          exec: async (t) => void (await lite.exec(t)),
          query: async <R>(t: string, p?: unknown[]) => (await lite.query<R>(t, p)).rows,
        },
        await loadMigrations(MIGRATIONS_DIR),
      );
    } catch (err) {
      fail('migrating it to the current schema', err);
    }
    await target.connect();
    const tables = await tablesInOrder(target);
    for (const table of tables) {
      const where = SEEDED[table];
      const r = await target.query(
        `SELECT count(*)::int AS n FROM ${ident(table)}${where ? ` WHERE NOT (${where})` : ''}`,
      );
      if ((r.rows[0] as { n: number }).n > 0)
        fail(
          'checking the target',
          new Error(`the platform database already holds data (table ${table}); it is never overwritten`),
        );
    }
    await target.query('BEGIN');
    try {
      for (const table of [...tables].reverse()) await target.query(`DELETE FROM ${ident(table)}`);
      for (const table of tables) moved[table] = await copyTable(lite, target, table);
      await moveSequences(target, tables);
      await target.query('COMMIT');
    } catch (err) {
      await target.query('ROLLBACK');
      fail('copying the rows', err);
    }
  } finally {
    await target.end().catch(() => undefined);
    await lite.close();
  }
  const stamp = (opts.now?.() ?? new Date()).toISOString().replace(/[:.]/g, '-');
  const renamedTo = `${pgliteDir}.pglite-migrated-${stamp}`;
  await rename(pgliteDir, renamedTo);
  log.warn(
    { moved, renamedTo },
    `moved the PGlite database into the embedded PostgreSQL server (${Object.values(moved).reduce((a, b) => a + b, 0)} rows); the old data is kept in ${renamedTo} and can be removed`,
  );
  return { moved, renamedTo };
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The platform's tables (schema public, without the migrations table), parents before children. */
async function tablesInOrder(client: pg.Client): Promise<string[]> {
  const tables = (
    await client.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
        ORDER BY table_name`,
    )
  ).rows.map((r) => r.name);
  const deps = (
    await client.query<{ child: string; parent: string }>(
      `SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'f' AND n.nspname = 'public' AND c.relname <> p.relname`,
    )
  ).rows;
  const ordered: string[] = [];
  const visit = (t: string, path: Set<string>) => {
    if (ordered.includes(t) || path.has(t)) return;
    path.add(t);
    for (const d of deps) if (d.child === t) visit(d.parent, path);
    ordered.push(t);
  };
  for (const t of tables) visit(t, new Set());
  return ordered.filter((t) => tables.includes(t));
}

type Lite = { query<R>(sql: string, params?: unknown[]): Promise<{ rows: R[] }> };

/**
 * Copies one table through JSON, so every value goes through PostgreSQL's own conversions (timestamps,
 * jsonb, bytea, arrays) on both sides. Returns the row count.
 */
async function copyTable(lite: Lite, target: pg.Client, table: string): Promise<number> {
  const columns = (
    await target.query<{ name: string }>(
      `SELECT column_name AS name FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER'
        ORDER BY ordinal_position`,
      [table],
    )
  ).rows.map((r) => ident(r.name));
  const list = columns.join(', ');
  let copied = 0;
  for (let offset = 0; ; offset += BATCH) {
    const { rows } = await lite.query<{ r: string }>(
      `SELECT coalesce(json_agg(t)::text, '[]') AS r FROM (SELECT * FROM ${ident(table)} ORDER BY 1 LIMIT ${BATCH} OFFSET ${offset}) t`,
    );
    const batch = rows[0]?.r ?? '[]';
    if (batch === '[]') break;
    const r = await target.query(
      `INSERT INTO ${ident(table)} (${list}) OVERRIDING SYSTEM VALUE
         SELECT ${list} FROM json_populate_recordset(NULL::${ident(table)}, $1::json)`,
      [batch],
    );
    copied += r.rowCount ?? 0;
  }
  const source = await lite.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${ident(table)}`);
  if (source.rows[0]?.n !== copied)
    throw new Error(`table ${table}: copied ${copied} rows of ${source.rows[0]?.n}`);
  return copied;
}

/** Moves every serial/identity sequence of the copied tables past the largest copied value. */
async function moveSequences(target: pg.Client, tables: string[]): Promise<void> {
  const { rows } = await target.query<{ table: string; column: string; seq: string }>(
    `SELECT table_name AS table, column_name AS column,
            pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq
       FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name = ANY($1)
        AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL`,
    [tables],
  );
  for (const r of rows) {
    await target.query(
      `SELECT setval($1, m) FROM (SELECT max(${ident(r.column)}) AS m FROM ${ident(r.table)}) x WHERE m IS NOT NULL`,
      [r.seq],
    );
  }
}
