import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SqlExecutor } from './executor.ts';

/** Folder of the dbmate-format migration files (`-- migrate:up` / `-- migrate:down`). */
export const MIGRATIONS_DIR: string = fileURLToPath(new URL('../migrations/', import.meta.url));

/** One migration file, split into its up and down parts. */
export interface Migration {
  /** dbmate version (the file name's leading digits). */
  version: string;
  file: string;
  up: string;
  down: string;
}

/** Parses a dbmate migration file's text. */
export function parseMigration(file: string, text: string): Migration {
  const version = /^(\d+)/.exec(file)?.[1];
  const upAt = text.search(/^-- migrate:up\b.*$/m);
  const downAt = text.search(/^-- migrate:down\b.*$/m);
  if (!version || upAt < 0 || downAt < 0 || downAt < upAt) {
    throw new Error(
      `${file}: not a dbmate migration (needs a numeric version and -- migrate:up / -- migrate:down)`,
    );
  }
  const afterMarker = (at: number) => text.indexOf('\n', at) + 1;
  return {
    version,
    file,
    up: text.slice(afterMarker(upAt), downAt).trim(),
    down: text.slice(afterMarker(downAt)).trim(),
  };
}

/** All migrations of this package, oldest first. */
export function migrations(): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => parseMigration(f, readFileSync(new URL(f, `file://${MIGRATIONS_DIR}`), 'utf8')));
}

/**
 * The migrations as one SQL script: `up` (default) applies all of them oldest first, `down` removes
 * everything newest first. Wrapped in BEGIN/COMMIT, ready for `psql -f`.
 */
export function migrationSql(direction: 'up' | 'down' = 'up'): string {
  const all = migrations();
  const parts =
    direction === 'up'
      ? all.map((m) => `-- ${m.file} (up)\n${m.up}`)
      : all.reverse().map((m) => `-- ${m.file} (down)\n${m.down}`);
  return `-- @minipaas/sql ${direction} migration, generated from packages/sql/migrations\nBEGIN;\n\n${parts.join('\n\n')}\n\nCOMMIT;\n`;
}

/**
 * Applies the migrations without a migration tool. Every migration of this package is idempotent, so
 * calling this on every start is safe (and cheap); concurrent callers serialize on an advisory lock.
 */
export async function migrate(db: SqlExecutor): Promise<void> {
  for (const m of migrations()) await db.exec(m.up);
}

/** Removes everything the migrations created: functions, the `minipaas` schema, all queues and streams. */
export async function unmigrate(db: SqlExecutor): Promise<void> {
  for (const m of migrations().reverse()) await db.exec(m.down);
}
