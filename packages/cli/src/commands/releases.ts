/** `minipaas releases APP` (an app's releases) and `minipaas rollback APP [vN]` (redeploy an old one, no build). */
import type { DeploymentView } from '@minipaas/core';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { followDeployment } from '../follow-deployment.ts';
import { ago, json, line, type Output, table } from '../output.ts';

interface ReleaseView {
  version: number;
  createdAt: string;
  source: string;
  stack: string;
  status: string;
  rollbackOf: number | null;
  current: boolean;
  canRollback: boolean;
}

export function registerReleases(program: Command, ctx: Context): void {
  program
    .command('releases')
    .description("list an app's releases")
    .argument('<app>', 'app name or id')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
A release is what a deployment built (or a rollback re-used) together with the app's env vars and
process formation at that time. CAN ROLLBACK: it went live once and its files are still kept
(apps.keepReleases).

Examples:
  $ minipaas releases web
  $ minipaas releases web --json`,
    )
    .action(async (app: string, opts: { json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const { releases } = await client.request<{ releases: ReleaseView[] }>(
        'GET',
        `/api/v1/apps/${encodeURIComponent(app)}/releases`,
      );
      if (opts.json) return json(ctx.out, { releases });
      if (releases.length === 0) return line(ctx.out, `${app} has no releases yet.`);
      ctx.out.out(
        table(
          ['VERSION', 'WHEN', 'SOURCE', 'STATUS', 'CAN ROLLBACK'],
          releases.map((r) => [
            `v${r.version}${r.current ? ' (current)' : ''}`,
            ago(r.createdAt),
            r.rollbackOf ? `rollback to v${r.rollbackOf}` : `${r.source} (${r.stack})`,
            r.status,
            r.canRollback ? 'yes' : 'no',
          ]),
        ),
      );
    });

  program
    .command('rollback')
    .description('deploy an earlier release again (its code and env vars), without building')
    .argument('<app>', 'app name or id')
    .argument('[release]', 'release to go back to, e.g. v3 (default: the previous one)')
    .option('--json', 'print the finished deployment as JSON')
    .addHelpText(
      'after',
      `
The old release's files and env vars go live as a new release, health-checked like any deploy; the
current release keeps serving until the new one is healthy.

Examples:
  $ minipaas rollback web
  $ minipaas rollback web v3`,
    )
    .action(async (app: string, release: string | undefined, opts: { json?: boolean }, c: Command) => {
      let version: number | undefined;
      if (release !== undefined) {
        const m = /^v?(\d{1,7})$/.exec(release);
        if (!m) throw new CliError(`"${release}" is not a release: give a version such as v3`);
        version = Number(m[1]);
      }
      const client = await clientFor(c, ctx);
      const started = await client.request<DeploymentView>(
        'POST',
        `/api/v1/apps/${encodeURIComponent(app)}/rollback`,
        { json: version !== undefined ? { release: version } : {} },
      );
      const p: Output = opts.json ? { out: ctx.out.err, err: ctx.out.err, isTTY: false } : ctx.out;
      line(p, `Rolling back ${app}: deployment ${started.id}`);
      const { deployment } = await followDeployment(client, started, p);
      if (opts.json) json(ctx.out, deployment);
      if (deployment.status !== 'running')
        throw new CliError(
          `rollback of ${app} ${deployment.status}${deployment.error ? `: ${deployment.error}` : ''}`,
        );
    });
}
