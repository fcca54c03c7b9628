/** `minipaas scale APP web=N ...` and `minipaas restart APP`. */
import type { Command } from 'commander';
import { parseScaleArgs } from '../args.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { followDeployment } from '../follow-deployment.ts';
import { json, line } from '../output.ts';
import { formation } from './apps.ts';

export function registerScale(program: Command, ctx: Context): void {
  program
    .command('scale')
    .description('set how many instances of each process type run')
    .argument('<app>', 'app name or id')
    .argument('<type=count...>', 'e.g. web=3 worker=1 (a bare number means web)')
    .option('--json', 'print the app as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas scale hello web=3\n  $ minipaas scale hello web=1 worker=2\n  $ minipaas scale hello worker=0',
    )
    .action(async (app: string, args: string[], opts: { json?: boolean }, cmd: Command) => {
      const map = parseScaleArgs(args);
      const client = await clientFor(cmd, ctx);
      const res = await client.scale(app, map);
      if (opts.json) return json(ctx.out, res);
      line(
        ctx.out,
        `Scaled ${res.name ?? app}: ${
          res.processes
            ? formation(res)
            : Object.entries(map)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')
        }`,
      );
    });

  program
    .command('restart')
    .description('rolling restart of every instance of an app (same release)')
    .argument('<app>', 'app name or id')
    .option('--no-wait', 'return once the restart is accepted')
    .option('--json', 'print the final deployment as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas restart hello\n  $ minipaas restart hello --no-wait --json',
    )
    .action(async (app: string, opts: { wait: boolean; json?: boolean }, cmd: Command) => {
      const client = await clientFor(cmd, ctx);
      const dep = await client.restart(app);
      if (!opts.wait) {
        if (opts.json) return json(ctx.out, dep);
        line(ctx.out, `Restarting ${app} (deployment ${dep.id}).`);
        return;
      }
      if (!opts.json) line(ctx.out, `Restarting ${app} ...`);
      const { deployment } = await followDeployment(client, dep, ctx.out, { quiet: Boolean(opts.json) });
      if (opts.json) json(ctx.out, deployment);
      if (deployment.status !== 'running') {
        throw new CliError(
          `restart of ${app} ${deployment.status}${deployment.error ? `: ${deployment.error}` : ''}`,
        );
      }
      if (!opts.json) line(ctx.out, `Restarted ${app}.`);
    });
}
