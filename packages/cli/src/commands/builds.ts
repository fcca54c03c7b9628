/** `minipaas builds APP` (the app's builds: queued with their position, running, recent) and `builds:cancel ID`. */
import type { DeploymentView } from '@minipaas/core';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, json, line, table } from '../output.ts';

function statusCell(d: DeploymentView): string {
  if (d.status === 'queued') return d.position ? `queued (position ${d.position})` : 'queued';
  if (d.cancelRequested) return `${d.status} (cancelling)`;
  return d.status;
}

export function registerBuilds(program: Command, ctx: Context): void {
  const cancelBuild = async (id: string, opts: { json?: boolean }, c: Command) => {
    const client = await clientFor(c, ctx);
    const d = await client.request<DeploymentView>(
      'POST',
      `/api/v1/deployments/${encodeURIComponent(id)}/cancel`,
    );
    if (opts.json) return json(ctx.out, d);
    if (d.status === 'cancelled') line(ctx.out, `Cancelled ${d.id} (${d.appName}).`);
    else line(ctx.out, `${d.id} (${d.appName}) could not be stopped any more: it is ${d.status}.`);
  };
  const list = (cmd: Command) =>
    cmd
      .argument('[app]', 'app name or id (or "cancel ID", the space form of builds:cancel)')
      .argument('[id]', 'with "cancel": the deployment id')
      .option('-a, --app <app>', 'app name or id')
      .option('--json', 'print JSON')
      .addHelpText(
        'after',
        `
Lists the app's builds and deployments, newest first: queued ones with their place in the platform's
build queue (1 = next to start), running ones, and recent finished ones.

Examples:
  $ minipaas builds web
  $ minipaas builds --app web --json
  $ minipaas builds:cancel 0b7c0a5e-...`,
      )
      .action(
        async (
          appArg: string | undefined,
          id: string | undefined,
          opts: { app?: string; json?: boolean },
          c: Command,
        ) => {
          // `builds cancel ID` and `builds list APP`: the space forms of builds:cancel and builds.
          if (appArg === 'cancel' && id) return cancelBuild(id, opts, c);
          const app = appArg === 'list' && id ? id : (appArg ?? opts.app);
          if (!app) throw new CliError('which app? minipaas builds APP');
          const client = await clientFor(c, ctx);
          const { builds } = await client.request<{ builds: DeploymentView[] }>(
            'GET',
            `/api/v1/apps/${encodeURIComponent(app)}/builds`,
            { query: { all: 'true' } },
          );
          if (opts.json) return json(ctx.out, { builds });
          if (builds.length === 0)
            return line(ctx.out, `${app} has no builds yet. Deploy it with: minipaas deploy --app ${app}`);
          ctx.out.out(
            table(
              ['ID', 'STATUS', 'KIND', 'RELEASE', 'CREATED', 'MESSAGE'],
              builds.map((d) => [
                d.id,
                statusCell(d),
                d.kind,
                d.release ? `v${d.release}` : '',
                ago(d.createdAt),
                d.error && d.status !== 'running' ? d.error : (d.message ?? ''),
              ]),
            ),
          );
        },
      );
  list(program.command('builds').description("list an app's builds with their queue position"));

  const cancel = (cmd: Command) =>
    cmd
      .argument('<id>', 'deployment id (see minipaas builds APP)')
      .option('--json', 'print the deployment as JSON')
      .addHelpText(
        'after',
        `
A queued build is cancelled at once; a running one is stopped (its whole process tree is killed) and the
app's previous release keeps serving. A deployment that already finished cannot be cancelled.

Examples:
  $ minipaas builds:cancel 0b7c0a5e-...
  $ minipaas builds cancel 0b7c0a5e-... --json`,
      )
      .action(cancelBuild);
  cancel(program.command('builds:cancel').description('cancel a queued or running build'));
}
