/**
 * `minipaas env APP`, `env:set APP K=V... [--secret]`, `env:unset APP K...`, `env:import APP FILE [--secret]`
 * and `secrets:rotate-key`. Secret values are sealed at rest and shown as •••• unless `--reveal`.
 */
import { readFile } from 'node:fs/promises';
import { parseEnv } from 'node:util';
import { ENV_NAME_RE } from '@minipaas/core/name-patterns';
import type { Command } from 'commander';
import { parseEnvNames, parseEnvPairs } from '../args.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { json, line } from '../output.ts';

/** Largest .env file env:import reads. */
const MAX_ENV_FILE = 1024 * 1024;

export function registerEnv(program: Command, ctx: Context): void {
  // Both forms, as Heroku's CLI: `env:set APP ...` and `env set APP ...` (`env APP` shows).
  const envCmd = program
    .command('env')
    .description("show and change an app's env vars and secrets")
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas env hello\n  $ minipaas env set hello --secret API_KEY=...\n  $ minipaas env:import hello .env',
    );
  const show = (cmd: Command) =>
    cmd
      .argument('<app>', 'app name or id')
      .option('--json', 'print JSON')
      .option('--shell', 'print as KEY=VALUE lines')
      .option('--reveal', "show secrets' values (needs the app:secret:reveal permission)")
      .addHelpText(
        'after',
        '\nSecrets show as •••• (marked "secret") unless --reveal.\n\nExamples:\n  $ minipaas env hello\n  $ minipaas env hello --reveal --shell > .env\n  $ minipaas env hello --json',
      )
      .action(
        async (app: string, opts: { json?: boolean; shell?: boolean; reveal?: boolean }, cmd: Command) => {
          const client = await clientFor(cmd, ctx);
          const view = await client.getApp(app, { reveal: Boolean(opts.reveal) });
          const env = view.env ?? {};
          const secrets = new Set(view.secrets ?? []);
          if (opts.json) return json(ctx.out, env);
          const keys = Object.keys(env).sort();
          if (!keys.length)
            return line(ctx.out, `${app} has no env vars. Set some with: minipaas env:set ${app} KEY=VALUE`);
          const width = Math.max(...keys.map((k) => k.length));
          for (const k of keys)
            line(
              ctx.out,
              opts.shell
                ? `${k}=${env[k]}`
                : `${k.padEnd(width)}  ${env[k]}${secrets.has(k) ? '  (secret)' : ''}`,
            );
        },
      );
  show(envCmd.command('show', { isDefault: true }).description("show an app's env vars (secrets masked)"));

  const set = (cmd: Command) =>
    cmd
      .argument('<app>', 'app name or id')
      .argument('<K=V...>', 'variables to set')
      .option('--secret', 'store them as secrets: sealed at rest, masked in answers and logs')
      .option('--json', 'print the app as JSON')
      .addHelpText(
        'after',
        '\nExamples:\n  $ minipaas env:set hello GREETING=hi NODE_ENV=production\n  $ minipaas env:set hello --secret STRIPE_KEY=sk_live_...',
      )
      .action(
        async (app: string, pairs: string[], opts: { json?: boolean; secret?: boolean }, cmd: Command) => {
          const env = parseEnvPairs(pairs);
          const client = await clientFor(cmd, ctx);
          const res = await client.patchApp(app, opts.secret ? { secrets: env } : { env });
          if (opts.json) return json(ctx.out, res);
          line(ctx.out, `Set ${opts.secret ? 'secret ' : ''}${Object.keys(env).join(', ')} on ${app}.`);
        },
      );
  const setDescription = 'set env vars, or secrets with --secret (rolls the running release, no rebuild)';
  set(program.command('env:set').description(setDescription));
  set(envCmd.command('set').description(setDescription));

  const unset = (cmd: Command) =>
    cmd
      .argument('<app>', 'app name or id')
      .argument('<K...>', 'variable names')
      .option('--json', 'print the app as JSON')
      .addHelpText('after', '\nExamples:\n  $ minipaas env:unset hello GREETING')
      .action(async (app: string, names: string[], opts: { json?: boolean }, cmd: Command) => {
        const env = Object.fromEntries(parseEnvNames(names).map((k) => [k, null]));
        const client = await clientFor(cmd, ctx);
        const res = await client.patchApp(app, { env });
        if (opts.json) return json(ctx.out, res);
        line(ctx.out, `Unset ${names.join(', ')} on ${app}.`);
      });
  const unsetDescription = 'remove env vars or secrets (rolls the running release)';
  unset(program.command('env:unset').description(unsetDescription));
  unset(envCmd.command('unset').description(unsetDescription));

  const importFile = (cmd: Command) =>
    cmd
      .argument('<app>', 'app name or id')
      .argument('<file>', 'a .env file (KEY=VALUE lines, # comments, quoted values)')
      .option('--secret', 'store every variable as a secret')
      .option('--json', 'print the app as JSON')
      .addHelpText(
        'after',
        "\nParsed with Node's dotenv parser (util.parseEnv).\n\nExamples:\n  $ minipaas env:import hello .env\n  $ minipaas env:import hello .env.production --secret",
      )
      .action(async (app: string, file: string, opts: { json?: boolean; secret?: boolean }, cmd: Command) => {
        let text: string;
        try {
          const buf = await readFile(file);
          if (buf.length > MAX_ENV_FILE) throw new CliError(`${file} is larger than ${MAX_ENV_FILE} bytes`);
          text = buf.toString('utf8');
        } catch (err) {
          if (err instanceof CliError) throw err;
          throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        }
        // The parser's result is a plain object, where a `__proto__` line would vanish without a word; the API
        // refuses the name anyway (prototype-poisoning guard), so say so here.
        if (/^[ \t]*(?:export[ \t]+)?__proto__[ \t]*=/m.test(text))
          throw new CliError(`"__proto__" in ${file} cannot be an env var name`);
        // Null prototype: a line named like an Object.prototype member (constructor) is just a variable.
        const env: Record<string, string> = Object.create(null);
        for (const [k, v] of Object.entries(parseEnv(text))) {
          if (!ENV_NAME_RE.test(k)) throw new CliError(`invalid env var name "${k}" in ${file}`);
          env[k] = v ?? '';
        }
        if (Object.keys(env).length === 0) throw new CliError(`${file} has no variables`);
        const client = await clientFor(cmd, ctx);
        const res = await client.patchApp(app, opts.secret ? { secrets: env } : { env });
        if (opts.json) return json(ctx.out, res);
        line(
          ctx.out,
          `Imported ${Object.keys(env).length} ${opts.secret ? 'secret(s)' : 'variable(s)'} into ${app}.`,
        );
      });
  const importDescription = 'set the variables of a dotenv file (rolls the running release once)';
  importFile(program.command('env:import').description(importDescription));
  importFile(envCmd.command('import').description(importDescription));

  const rotateKey = (cmd: Command) =>
    cmd
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        '\nThe previous key stays in MINIPAAS_HOME/master.key as the second line until the next rotation.\nWith MINIPAAS_MASTER_KEY set, change that variable instead.\n\nExamples:\n  $ minipaas secrets:rotate-key',
      )
      .action(async (opts: { json?: boolean }, cmd: Command) => {
        const client = await clientFor(cmd, ctx);
        const r = await client.rotateMasterKey();
        if (opts.json) return json(ctx.out, r);
        line(ctx.out, `New master key ${r.kid}; ${r.resealed} secret value(s) sealed again.`);
      });
  const rotateDescription =
    'make a new master key and seal every secret again under it (platform owners; Vault-held values are untouched)';
  rotateKey(program.command('secrets:rotate-key').description(rotateDescription));
  rotateKey(
    program
      .command('secrets')
      .description("the platform's secrets (master key)")
      .command('rotate-key')
      .description(rotateDescription),
  );
}
