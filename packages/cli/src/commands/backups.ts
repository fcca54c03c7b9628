/**
 * `minipaas backup`, `backups` and `restore` (docs/addons.md). Backups are taken by minipaasd
 * (`POST /api/v1/backups`), so they work against a remote platform too; an add-on restore goes
 * through the API as well. The platform database is restored here, on the platform host, with
 * `pg_restore` while minipaasd is stopped.
 */
import { execFile } from 'node:child_process';
import { basename, dirname, resolve } from 'node:path';
import type { BackupView } from '@minipaas/core';
import { BACKUP_FILE_RE } from '@minipaas/core/addons';
import { homePaths } from '@minipaas/core/paths';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { loadConfig } from '../lazy-imports.ts';
import { ago, bytes, json, line, table } from '../output.ts';
import { CLI_BIN, readPid } from '../platform.ts';
import { BIN, isOurProcess } from '../teardown.ts';
import { addonPath, onPath } from './addons.ts';

function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; output: string }> {
  return new Promise((res, rej) => {
    execFile(file, args, { env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return rej(err);
      res({ code: err ? Number(err.code) : 0, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/** Restores a platform dump into the platform database (minipaasd must be stopped). */
async function restorePlatform(ctx: Context, file: string, stop: boolean): Promise<void> {
  const config = await loadConfig(ctx.env);
  const paths = homePaths(config.home);
  const pid = readPid(paths.serverPid);
  if (pid !== undefined && isOurProcess(pid, BIN.server, config.home)) {
    if (!stop)
      throw new CliError(
        `minipaasd is running (pid ${pid}): restoring the platform database under it would corrupt its state. Stop it first (minipaas down), or add --stop`,
      );
    line(ctx.out, '-----> Stopping the platform (minipaas down)');
    const down = await run(process.execPath, [CLI_BIN, 'down'], ctx.env);
    if (down.code !== 0) throw new CliError(`minipaas down failed: ${down.output.split('\n').pop() ?? ''}`);
  }
  // TODO(embedded-postgres): the embedded server's superuser URL when DATABASE_URL is unset.
  const url = config.databaseUrl;
  if (!url)
    throw new CliError(
      'the platform database is not on a PostgreSQL server (DATABASE_URL is unset), so pg_restore cannot restore it',
    );
  const pgRestore = await onPath('pg_restore', ctx.env.PATH);
  if (!pgRestore)
    throw new CliError(
      'pg_restore is not installed: install PostgreSQL client tools (apt-get install -y postgresql-client)',
    );
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  const env: NodeJS.ProcessEnv = { ...ctx.env };
  if (password) env.PGPASSWORD = password;
  line(ctx.out, `-----> Restoring ${basename(file)} into the platform database`);
  const r = await run(
    pgRestore,
    ['--clean', '--if-exists', '--single-transaction', '--no-password', `--dbname=${u.toString()}`, file],
    env,
  );
  if (r.code !== 0) throw new CliError(`pg_restore failed (nothing was changed): ${r.output.slice(0, 600)}`);
  line(ctx.out, 'Restored. Start the platform again with: minipaas up -d');
}

export function registerBackups(program: Command, ctx: Context): void {
  program
    .command('backup')
    .description('dump the platform database (or an add-on database) to MINIPAAS_HOME/backups')
    .option('--addon <name>', 'back up this add-on database instead (with --app)')
    .option('-a, --app <app>', 'the add-on’s app')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Takes a consistent pg_dump (custom format) on the platform host; needs PostgreSQL's client tools there
(Debian: apt-get install -y postgresql-client). Files: <kind>-<name>-<UTC time>.dump.

Examples:
  $ minipaas backup
  $ minipaas backup --addon postgres --app web`,
    )
    .action(async (opts: { addon?: string; app?: string; json?: boolean }, c: Command) => {
      if ((opts.addon === undefined) !== (opts.app === undefined))
        throw new CliError('give --addon and --app together (or neither, for the platform database)');
      const body = opts.addon !== undefined ? { app: opts.app, addon: opts.addon } : {};
      // --json prints the backup only, so the output parses as JSON
      if (!opts.json)
        line(
          ctx.out,
          `-----> Backing up ${opts.addon ? `${opts.addon} of ${opts.app}` : 'the platform database'}`,
        );
      const b = await (await clientFor(c, ctx)).request<BackupView>('POST', '/api/v1/backups', {
        json: body,
      });
      if (opts.json) return json(ctx.out, b);
      line(ctx.out, `Wrote ${b.path} (${bytes(b.bytes)}).`);
    });

  program
    .command('backups')
    .description('list backups (newest first)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas backups\n  $ minipaas backups --json')
    .action(async (opts: { json?: boolean }, c: Command) => {
      const { backups } = await (await clientFor(c, ctx)).request<{ backups: BackupView[] }>(
        'GET',
        '/api/v1/backups',
      );
      if (opts.json) return json(ctx.out, { backups });
      if (backups.length === 0) return line(ctx.out, 'No backups yet. Take one with: minipaas backup');
      ctx.out.out(
        table(
          ['FILE', 'KIND', 'OF', 'SIZE', 'TAKEN'],
          backups.map((b) => [b.file, b.kind, b.name, bytes(b.bytes), ago(b.createdAt)]),
        ),
      );
    });

  program
    .command('restore')
    .description('restore a backup into the platform database (or an add-on database)')
    .argument('<file>', 'a backup file (as listed by "minipaas backups", or its path)')
    .option('--addon <name>', 'restore into this add-on database (with --app)')
    .option('-a, --app <app>', 'the add-on’s app')
    .option('--stop', 'stop the platform first when it runs (platform database only)')
    .option(
      '--from-other',
      "restore another app's or add-on's backup into this add-on (copying data on purpose)",
    )
    .addHelpText(
      'after',
      `
The objects in the dump replace the ones in the database (pg_restore --clean --if-exists), in one
transaction: a failed restore changes nothing. The platform database can only be restored while
minipaasd is stopped, on the platform host; an add-on database is restored by minipaasd from its
backups directory (the app's connections to it are ended first).

Examples:
  $ minipaas restore addon-web.postgres-20261126T030000Z.dump --addon postgres --app web
  $ minipaas restore addon-prod.postgres-20261126T030000Z.dump --addon postgres --app staging --from-other
  $ minipaas restore ~/.minipaas/backups/platform-minipaas-20261126T030000Z.dump --stop`,
    )
    .action(
      async (
        file: string,
        opts: { addon?: string; app?: string; stop?: boolean; fromOther?: boolean },
        c: Command,
      ) => {
        if ((opts.addon === undefined) !== (opts.app === undefined))
          throw new CliError('give --addon and --app together (or neither, for the platform database)');
        if (opts.addon !== undefined && opts.app !== undefined) {
          const name = basename(file);
          if (!BACKUP_FILE_RE.test(name))
            throw new CliError(`${name} is not a backup file name (minipaas backups lists them)`);
          if (file !== name) {
            const config = await loadConfig(ctx.env);
            if (resolve(dirname(file)) !== resolve(homePaths(config.home).backups))
              throw new CliError(
                `the platform restores add-on backups from its backups directory: copy ${name} into ${homePaths(config.home).backups} first`,
              );
          }
          line(ctx.out, `-----> Restoring ${name} into ${opts.addon} of ${opts.app}`);
          await (await clientFor(c, ctx)).request('POST', `${addonPath(opts.app, opts.addon)}/restore`, {
            json: { backup: name, ...(opts.fromOther ? { fromOther: true } : {}) },
          });
          line(ctx.out, `Restored ${opts.addon} of ${opts.app} from ${name}.`);
          return;
        }
        let path = file;
        if (!file.includes('/')) {
          const config = await loadConfig(ctx.env);
          path = resolve(homePaths(config.home).backups, file);
        }
        if (!BACKUP_FILE_RE.test(basename(path)) || !basename(path).startsWith('platform-'))
          throw new CliError(
            `${basename(path)} is not a platform backup (for an add-on, add --addon NAME --app APP)`,
          );
        await restorePlatform(ctx, resolve(path), opts.stop === true);
      },
    );
}
