/**
 * Applies plain-SQL migrations in dbmate format (`-- migrate:up` / `-- migrate:down`) from a folder,
 * recording versions in dbmate's own `schema_migrations` table, so `dbmate` and this migrator agree.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Anything that can run a multi-statement SQL script and a parameterised query. */
export interface SqlRunner {
  exec(sql: string): Promise<void>;
  query<R>(sql: string, params?: unknown[]): Promise<R[]>;
}

export interface Migration {
  version: string;
  name: string;
  up: string;
  down: string;
}

/** Splits a dbmate migration file into its up and down sections. */
export function parseMigration(file: string, text: string): Migration {
  const m = /^(\d+)_?(.*)\.sql$/.exec(file);
  if (!m) throw new Error(`migration file name must start with a version number: ${file}`);
  const upIdx = text.indexOf('-- migrate:up');
  if (upIdx < 0) throw new Error(`migration ${file} has no "-- migrate:up" section`);
  const downIdx = text.indexOf('-- migrate:down');
  const up = text.slice(upIdx + '-- migrate:up'.length, downIdx > upIdx ? downIdx : undefined);
  const down = downIdx >= 0 ? text.slice(downIdx + '-- migrate:down'.length) : '';
  return { version: m[1] as string, name: m[2] ?? '', up: up.trim(), down: down.trim() };
}

export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  return Promise.all(files.map(async (f) => parseMigration(f, await readFile(join(dir, f), 'utf8'))));
}

/** Applies pending migrations in order, each in its own transaction. Returns the versions applied. */
export async function migrateUp(runner: SqlRunner, migrations: Migration[]): Promise<string[]> {
  await runner.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(128) PRIMARY KEY)');
  const rows = await runner.query<{ version: string }>('SELECT version FROM schema_migrations');
  const done = new Set(rows.map((r) => r.version));
  const applied: string[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    await runner.exec('BEGIN');
    try {
      await runner.exec(m.up);
      await runner.query('INSERT INTO schema_migrations (version) VALUES ($1)', [m.version]);
      await runner.exec('COMMIT');
    } catch (err) {
      await runner.exec('ROLLBACK').catch(() => undefined);
      throw new Error(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`, { cause: err });
    }
    applied.push(m.version);
  }
  return applied;
}
