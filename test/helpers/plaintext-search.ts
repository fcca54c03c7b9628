/**
 * Where a plaintext appears on a platform: files under a directory (as bytes: the embedded PostgreSQL
 * data files and WAL, the agent's state, logs, backups) and rows of every table of the platform database
 * (as text). Used by the secrets tests, which expect a secret's plaintext to be nowhere.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { embeddedPostgres, PLATFORM_DATABASE } from '@minipaas/postgres';
import pg from 'pg';
import type { Platform } from './platform.ts';

/** Every file under `dir` that contains `needle` (as bytes). */
export async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  const want = Buffer.from(needle);
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const f = join(e.parentPath, e.name);
    const buf = await readFile(f).catch(() => null); // sockets, files removed meanwhile
    if (buf?.includes(want)) hits.push(f);
  }
  return hits;
}

/** Rows of every table of the platform's database (as text) that contain `needle`. */
export async function rowsContaining(p: Platform, needle: string): Promise<string[]> {
  // The platform's database: an external DATABASE_URL, else the embedded server under MINIPAAS_HOME.
  const url = p.env.DATABASE_URL ?? embeddedPostgres({ home: p.home }).superuserUrl(PLATFORM_DATABASE);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ s: string; t: string }>(
      "SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    );
    if (tables.rows.length < 5)
      throw new Error(`only ${tables.rows.length} tables: not the platform database`);
    const hits: string[] = [];
    for (const { s, t } of tables.rows) {
      const r = await client.query(`SELECT x::text AS row FROM "${s}"."${t}" x WHERE x::text LIKE $1`, [
        `%${needle}%`,
      ]);
      for (const row of r.rows) hits.push(`${s}.${t}: ${String(row.row).slice(0, 160)}`);
    }
    return hits;
  } finally {
    await client.end();
  }
}
