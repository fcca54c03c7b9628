/**
 * `minipaas addons` (list), `addons:create`, `addons:info`, `addons:destroy`, `addons:sql` and
 * `sql:install`: managed Postgres databases of an app (docs/addons.md). Every verb works in both
 * forms, `addons:create` and `addons create`.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { AddonView } from '@minipaas/core';
import type { Command } from 'commander';
import type { ApiClient } from '../api-client.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, json, line, table } from '../output.ts';

const seg = (s: string): string => encodeURIComponent(s);

export function addonPath(app: string, name?: string): string {
  return `/api/v1/apps/${seg(app)}/addons${name === undefined ? '' : `/${seg(name)}`}`;
}

export async function listAddons(client: ApiClient, app: string): Promise<AddonView[]> {
  return (await client.request<{ addons: AddonView[] }>('GET', addonPath(app))).addons;
}

/** The add-on a command means: the named one, else the app's only one, else the one in DATABASE_URL. */
export async function pickAddon(client: ApiClient, app: string, name: string | undefined): Promise<string> {
  if (name !== undefined) return name;
  const all = await listAddons(client, app);
  if (all.length === 1) return (all[0] as AddonView).name;
  const main = all.find((a) => a.envVar === 'DATABASE_URL');
  if (main) return main.name;
  if (all.length === 0)
    throw new CliError(
      `${app} has no add-ons; create one with: minipaas addons:create postgres --app ${app}`,
    );
  throw new CliError(
    `${app} has several add-ons (${all.map((a) => a.name).join(', ')}); choose one with --addon`,
  );
}

/** Finds an executable on PATH, or null. */
export async function onPath(program: string, path = process.env.PATH ?? ''): Promise<string | null> {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      await access(join(dir, program), constants.X_OK);
      return join(dir, program);
    } catch {
      // not here: keep looking
    }
  }
  return null;
}

function requireApp(opts: { app?: string }): string {
  if (!opts.app) throw new CliError('missing --app APP');
  return opts.app;
}

/** Registers `group VERB` and `group:VERB` with the same options and action. */
function both(
  program: Command,
  group: Command,
  verb: string,
  description: string,
  define: (c: Command) => void,
) {
  define(group.command(verb).description(description));
  define(program.command(`${group.name()}:${verb}`, { hidden: true }).description(description));
}

export function registerAddons(program: Command, ctx: Context): void {
  const addons = program
    .command('addons')
    .description("list, create, inspect and destroy an app's Postgres databases")
    .addHelpText(
      'after',
      `
Examples:
  $ minipaas addons --app web
  $ minipaas addons:create postgres --app web             # sets DATABASE_URL and rolls the app
  $ minipaas addons:info postgres --app web --reveal
  $ minipaas addons:sql postgres --app web                # psql into it
  $ minipaas sql:install --app web                        # @minipaas/sql queues and streams
  $ minipaas addons:destroy postgres --app web --confirm postgres
Reference: docs/addons.md`,
    );

  const list = (cmd: Command) =>
    cmd
      .option('-a, --app <app>', 'app name or id')
      .option('--json', 'print JSON')
      .addHelpText(
        'after',
        '\nExamples:\n  $ minipaas addons --app web\n  $ minipaas addons --app web --json',
      )
      .action(async (opts: { app?: string; json?: boolean }, c: Command) => {
        const app = requireApp(opts);
        const all = await listAddons(await clientFor(c, ctx), app);
        if (opts.json) return json(ctx.out, { addons: all });
        if (all.length === 0)
          return line(
            ctx.out,
            `${app} has no add-ons. Create one with: minipaas addons:create postgres --app ${app}`,
          );
        ctx.out.out(
          table(
            ['NAME', 'TYPE', 'ENV VAR', 'DATABASE', 'CREATED'],
            all.map((a) => [a.name, a.type, a.envVar, a.database, ago(a.createdAt)]),
          ),
        );
      });
  list(addons.command('list', { isDefault: true }).alias('ls').description("list an app's add-ons"));
  list(program.command('addons:list', { hidden: true }).description("list an app's add-ons"));

  both(
    program,
    addons,
    'create',
    'create a Postgres database for an app (sets DATABASE_URL, rolls the app)',
    (cmd) =>
      cmd
        .argument('<type>', 'add-on type: postgres')
        .option('-a, --app <app>', 'app name or id')
        .option('--name <name>', 'add-on name (default: the type; lowercase letters, digits, dashes)')
        .option(
          '--dedicated',
          'a PostgreSQL server of its own (127.0.0.1, port from postgres.dedicatedPortMin..Max)',
        )
        .option('--json', 'print the add-on as JSON')
        .addHelpText(
          'after',
          '\nExamples:\n  $ minipaas addons:create postgres --app web\n  $ minipaas addons:create postgres --app web --name analytics   # sets ANALYTICS_URL\n  $ minipaas addons:create postgres --app web --dedicated         # a server of its own',
        )
        .action(
          async (
            type: string,
            opts: { app?: string; name?: string; dedicated?: boolean; json?: boolean },
            c: Command,
          ) => {
            const app = requireApp(opts);
            const body: { type: string; name?: string; dedicated?: boolean } = { type };
            if (opts.name !== undefined) body.name = opts.name;
            if (opts.dedicated) body.dedicated = true;
            line(ctx.out, `-----> Creating a ${type} add-on for ${app}`);
            const a = await (await clientFor(c, ctx)).request<AddonView>('POST', addonPath(app), {
              json: body,
            });
            if (opts.json) return json(ctx.out, a);
            line(
              ctx.out,
              `Created ${a.name} (database ${a.database}); ${app} now has ${a.envVar} and was restarted.`,
            );
            line(ctx.out, `Connect with: minipaas addons:sql ${a.name} --app ${app}`);
          },
        ),
  );

  both(program, addons, 'info', 'show how to connect to an add-on (password masked unless --reveal)', (cmd) =>
    cmd
      .argument('<name>', 'add-on name')
      .option('-a, --app <app>', 'app name or id')
      .option('--reveal', 'show the password')
      .option('--json', 'print JSON')
      .addHelpText(
        'after',
        '\nExamples:\n  $ minipaas addons:info postgres --app web\n  $ minipaas addons:info postgres --app web --reveal --json',
      )
      .action(async (name: string, opts: { app?: string; reveal?: boolean; json?: boolean }, c: Command) => {
        const app = requireApp(opts);
        const a = await (await clientFor(c, ctx)).request<AddonView>('GET', addonPath(app, name), {
          query: { reveal: opts.reveal ? 'true' : undefined },
        });
        if (opts.json) return json(ctx.out, a);
        const o = ctx.out;
        line(o, `=== ${a.name} (${a.type}) of ${a.app}`);
        line(o, `Env var:   ${a.envVar}`);
        line(o, `Database:  ${a.database}`);
        line(o, `Role:      ${a.role}`);
        line(o, `Host:      ${a.host}${a.host.startsWith('/') ? ' (unix socket directory)' : ''}`);
        line(o, `Port:      ${a.port}`);
        line(o, `URL:       ${a.url}`);
        line(o, `Created:   ${a.createdAt} (${ago(a.createdAt)})`);
        if (!a.passwordRevealed) line(o, `(password hidden: add --reveal to show it)`);
      }),
  );

  both(program, addons, 'destroy', 'delete an add-on: its database, every row in it, and its role', (cmd) =>
    cmd
      .argument('<name>', 'add-on name')
      .option('-a, --app <app>', 'app name or id')
      .option('--confirm <name>', 'confirm by repeating the add-on name (required)')
      .addHelpText('after', '\nExamples:\n  $ minipaas addons:destroy postgres --app web --confirm postgres')
      .action(async (name: string, opts: { app?: string; confirm?: string }, c: Command) => {
        const app = requireApp(opts);
        if (opts.confirm === undefined)
          throw new CliError(
            `destroying ${name} deletes its database and every row in it: repeat its name with --confirm ${name}`,
          );
        if (opts.confirm !== name)
          throw new CliError(`--confirm "${opts.confirm}" does not match the add-on name "${name}"`);
        await (await clientFor(c, ctx)).request('DELETE', addonPath(app, name), {
          query: { confirm: opts.confirm },
        });
        line(ctx.out, `Destroyed ${name} of ${app}; its env var was removed and the app restarted.`);
      }),
  );

  both(
    program,
    addons,
    'sql',
    'open psql on an add-on database (or print its URL when psql is missing)',
    (cmd) =>
      cmd
        .argument('[name]', "add-on name (default: the app's only add-on, or the one in DATABASE_URL)")
        .option('-a, --app <app>', 'app name or id')
        .addHelpText(
          'after',
          '\nExamples:\n  $ minipaas addons:sql --app web\n  $ minipaas addons:sql analytics --app web',
        )
        .action(async (name: string | undefined, opts: { app?: string }, c: Command) => {
          const app = requireApp(opts);
          const client = await clientFor(c, ctx);
          const addon = await pickAddon(client, app, name);
          const a = await client.request<AddonView>('GET', addonPath(app, addon), {
            query: { reveal: 'true' },
          });
          const psql = await onPath('psql');
          if (!psql) {
            line(ctx.out, a.url);
            ctx.out.err(
              'psql is not installed (Debian: apt-get install -y postgresql-client); the URL is above.\n',
            );
            return;
          }
          // The password goes in the environment, never on the command line (ps shows arguments).
          const u = new URL(a.url);
          const password = decodeURIComponent(u.password);
          u.password = '';
          const code = await new Promise<number>((resolve, reject) => {
            const child = spawn(psql, [u.toString()], {
              stdio: 'inherit',
              env: { ...ctx.env, PGPASSWORD: password },
            });
            child.on('error', reject);
            child.on('close', (c2, signal) => resolve(c2 ?? (signal ? 1 : 0)));
          });
          if (code !== 0) throw new CliError(`psql exited with ${code}`, code);
        }),
  );

  const sql = program
    .command('sql')
    .description('@minipaas/sql (durable queues and streams inside Postgres) for apps')
    .addHelpText('after', '\nExamples:\n  $ minipaas sql:install --app web');
  both(program, sql, 'install', "apply the @minipaas/sql migration to an app's add-on database", (cmd) =>
    cmd
      .option('-a, --app <app>', 'app name or id')
      .option('--addon <name>', "add-on name (default: the app's only add-on, or the one in DATABASE_URL)")
      .option('--json', 'print JSON')
      .addHelpText(
        'after',
        `
Creates the "minipaas" schema with the queue and stream functions in the add-on's database, owned by
the add-on's role. Safe to run again (the migration is idempotent).

Examples:
  $ minipaas sql:install --app web
  $ minipaas sql:install --app web --addon analytics`,
      )
      .action(async (opts: { app?: string; addon?: string; json?: boolean }, c: Command) => {
        const app = requireApp(opts);
        const client = await clientFor(c, ctx);
        const addon = await pickAddon(client, app, opts.addon);
        const r = await client.request<{ addon: AddonView }>('POST', `${addonPath(app, addon)}/sql-install`, {
          json: {},
        });
        if (opts.json) return json(ctx.out, r);
        line(
          ctx.out,
          `Installed @minipaas/sql (schema "minipaas") into ${addon} of ${app} (${r.addon.envVar}).`,
        );
      }),
  );
}
