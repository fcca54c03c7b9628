/** `minipaas env APP`, `env:set APP K=V...`, `env:unset APP K...`. */
import type { Command } from 'commander';
import { parseEnvNames, parseEnvPairs } from '../args.ts';
import { type Context, clientFor } from '../context.ts';
import { json, line } from '../output.ts';

export function registerEnv(program: Command, ctx: Context): void {
  program
    .command('env')
    .description("show an app's env vars")
    .argument('<app>', 'app name or id')
    .option('--json', 'print JSON')
    .option('--shell', 'print as KEY=VALUE lines')
    .addHelpText('after', '\nExamples:\n  $ minipaas env hello\n  $ minipaas env hello --json')
    .action(async (app: string, opts: { json?: boolean; shell?: boolean }, cmd: Command) => {
      const client = await clientFor(cmd, ctx);
      const env = (await client.getApp(app)).env ?? {};
      if (opts.json) return json(ctx.out, env);
      const keys = Object.keys(env).sort();
      if (!keys.length)
        return line(ctx.out, `${app} has no env vars. Set some with: minipaas env:set ${app} KEY=VALUE`);
      const width = Math.max(...keys.map((k) => k.length));
      for (const k of keys) line(ctx.out, opts.shell ? `${k}=${env[k]}` : `${k.padEnd(width)}  ${env[k]}`);
    });

  program
    .command('env:set')
    .description('set env vars (rolls the running release)')
    .argument('<app>', 'app name or id')
    .argument('<K=V...>', 'variables to set')
    .option('--json', 'print the app as JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas env:set hello GREETING=hi NODE_ENV=production')
    .action(async (app: string, pairs: string[], opts: { json?: boolean }, cmd: Command) => {
      const env = parseEnvPairs(pairs);
      const client = await clientFor(cmd, ctx);
      const res = await client.patchApp(app, { env });
      if (opts.json) return json(ctx.out, res);
      line(ctx.out, `Set ${Object.keys(env).join(', ')} on ${app}.`);
    });

  program
    .command('env:unset')
    .description('remove env vars (rolls the running release)')
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
}
