/**
 * `pg_dump` and `pg_restore` from Debian's `postgresql-client`, run through the executor with
 * argument arrays. The password never goes on a command line: it is passed in `PGPASSWORD`, and the
 * URL handed to the program has it removed.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import { runProgram } from '../deploy/executor.ts';
import { parsePgUrl } from '../services/postgres-admin.ts';

/** Finds an executable on PATH (the client tools are not part of the embedded server binaries). */
export async function findOnPath(program: string, path = process.env.PATH ?? ''): Promise<string | null> {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, program);
    try {
      await access(file, constants.X_OK);
      return file;
    } catch {
      // not in this directory: keep looking
    }
  }
  return null;
}

async function tool(program: 'pg_dump' | 'pg_restore'): Promise<string> {
  const file = await findOnPath(program);
  if (!file)
    throw new MinipaasError(
      'MINIPAAS_ERR_TOOL_MISSING',
      `${program} is not installed on the platform host: install PostgreSQL's client tools (Debian: apt-get install -y postgresql-client)`,
    );
  return file;
}

/** The URL without its password, and the environment that carries the password instead. */
export function splitPassword(url: string): { url: string; env: NodeJS.ProcessEnv } {
  const u = parsePgUrl(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' };
  if (password) env.PGPASSWORD = password;
  return { url: u.toString(), env };
}

async function runTool(
  program: 'pg_dump' | 'pg_restore',
  args: string[],
  url: string,
  cwd: string,
): Promise<void> {
  const file = await tool(program);
  const conn = splitPassword(url);
  const lines: string[] = [];
  const r = await runProgram(file, [...args, `--dbname=${conn.url}`], {
    cwd,
    env: conn.env,
    timeoutMs: 60 * 60_000,
    onLine: (l) => {
      if (lines.length < 20) lines.push(l);
    },
  });
  if (r.code !== 0)
    throw new MinipaasError(
      'MINIPAAS_ERR_BACKUP_FAILED',
      `${program} failed (${r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${r.code}`}): ${lines.join(' ').slice(0, 800) || 'no output'}`,
    );
}

/** A consistent (single-snapshot) custom-format dump of the database at `url` into `file`. */
export async function pgDump(url: string, file: string, cwd: string): Promise<void> {
  await runTool('pg_dump', ['--format=custom', '--no-password', `--file=${file}`], url, cwd);
}

/**
 * Restores a custom-format dump over the database at `url`: existing objects of the dump are dropped
 * first (`--clean --if-exists`), all in one transaction, so a failed restore changes nothing.
 * `noOwner` makes the connecting role own what is restored (add-on databases).
 */
export async function pgRestore(url: string, file: string, cwd: string, noOwner: boolean): Promise<void> {
  const args = ['--clean', '--if-exists', '--single-transaction', '--no-password'];
  if (noOwner) args.push('--no-owner', '--no-privileges');
  await runTool('pg_restore', [...args, file], url, cwd);
}
