/** `minipaas apps` (list), `apps create`, `apps info`, `apps destroy`. */

import { createInterface } from 'node:readline/promises';
import type { AppView } from '@minipaas/core';
import type { Command } from 'commander';
import { collect, parseEnvPairs } from '../args.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, cell, colors, json, line, type Output, table } from '../output.ts';
import { splitGitArg } from './git.ts';

export function formation(app: AppView): string {
  const parts = Object.entries(app.processes ?? {}).map(([type, p]) => `${type}=${p.instances}`);
  return parts.length ? parts.join(' ') : '-';
}

export function paintStatus(o: Output, status: string): string {
  const c = colors(o.isTTY);
  if (status === 'running') return c.green(status);
  if (status === 'failed' || status === 'crashed' || status === 'oom-killed') return c.red(status);
  if (status === 'deploying' || status === 'starting' || status === 'restarting') return c.yellow(status);
  return status;
}

export function appsTable(o: Output, apps: readonly AppView[], projects?: Map<string, string>): string {
  return table(
    projects
      ? ['NAME', 'PROJECT', 'STATUS', 'RELEASE', 'PROCESSES', 'URL']
      : ['NAME', 'STATUS', 'RELEASE', 'PROCESSES', 'URL'],
    apps.map((a) => {
      const row = [
        a.name,
        paintStatus(o, a.status),
        a.currentRelease ? `v${a.currentRelease}` : '-',
        formation(a),
        cell(a.url),
      ];
      if (projects) row.splice(1, 0, projects.get(a.projectId) ?? a.projectId);
      return row;
    }),
  );
}

async function listAction(
  ctx: Context,
  cmd: Command,
  opts: { json?: boolean; project?: string },
): Promise<void> {
  const client = await clientFor(cmd, ctx);
  const apps = await client.listApps(opts.project);
  if (opts.json) return json(ctx.out, { apps });
  if (apps.length === 0) {
    line(ctx.out, 'No apps yet. Deploy one with: minipaas deploy DIR --app NAME');
    return;
  }
  const projects = new Map((await client.listProjects().catch(() => [])).map((p) => [p.id, p.slug]));
  ctx.out.out(appsTable(ctx.out, apps, projects));
}

async function confirmByTyping(name: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    const answer = await rl.question(
      `This destroys ${name}: its instances, releases and logs. Type the app name to confirm: `,
    );
    return answer.trim() === name;
  } finally {
    rl.close();
  }
}

export function registerApps(program: Command, ctx: Context): void {
  const apps = program
    .command('apps')
    .description('list, create, inspect and destroy apps')
    .addHelpText(
      'after',
      `
Examples:
  $ minipaas apps
  $ minipaas apps create hello --command "node server.js" -e GREETING=hi
  $ minipaas apps info hello
  $ minipaas apps destroy hello --confirm hello`,
    );

  const list = (cmd: Command) =>
    cmd
      .option('--json', 'print JSON')
      .option('--project <project>', 'only apps of this project (id or slug)')
      .addHelpText('after', '\nExamples:\n  $ minipaas apps\n  $ minipaas apps --project default --json')
      .action(async (opts: { json?: boolean; project?: string }, c: Command) => listAction(ctx, c, opts));
  list(apps.command('list', { isDefault: true }).alias('ls').description('list apps'));
  list(program.command('apps:list', { hidden: true }).description('list apps'));

  const create = (cmd: Command) =>
    cmd
      .argument('<name>', 'app name: lowercase letters, digits and dashes')
      .option('--project <project>', 'project id or slug (default: default)')
      .option('--command <command>', 'command of the web process (Procfile-style, $PORT is set)')
      .option('--runtime <runtime>', "process, docker or swarm (default: the platform's runtime.default)")
      .option('-e, --env <K=V>', 'env var (repeatable)', collect)
      .option('--git <url>', 'deploy from this git repository (URL or URL#REF; see minipaas git:set)')
      .option('--ref <ref>', 'branch, tag or commit id of --git (default: main)')
      .option('--json', 'print the app as JSON')
      .addHelpText(
        'after',
        '\nExamples:\n  $ minipaas apps create hello\n  $ minipaas apps create api --git https://github.com/acme/api.git --ref main\n  $ minipaas apps create api --project shop --command "node server.js" -e NODE_ENV=production\n  $ minipaas apps create web --runtime docker',
      )
      .action(
        async (
          name: string,
          opts: {
            project?: string;
            command?: string;
            runtime?: string;
            env?: string[];
            git?: string;
            ref?: string;
            json?: boolean;
          },
          c: Command,
        ) => {
          const client = await clientFor(c, ctx);
          const body: {
            name: string;
            project?: string;
            command?: string;
            runtime?: 'process' | 'docker' | 'swarm';
            env?: Record<string, string>;
            git?: { url: string; ref: string };
          } = { name };
          if (opts.runtime) {
            if (opts.runtime !== 'process' && opts.runtime !== 'docker' && opts.runtime !== 'swarm')
              throw new CliError(`--runtime must be process, docker or swarm, not "${opts.runtime}"`);
            body.runtime = opts.runtime;
          }
          if (opts.project) body.project = opts.project;
          if (opts.command) body.command = opts.command;
          if (opts.env?.length) body.env = parseEnvPairs(opts.env);
          if (opts.git) body.git = splitGitArg(opts.git, opts.ref);
          else if (opts.ref) throw new CliError('--ref needs --git');
          const app = await client.createApp(body);
          if (opts.json) return json(ctx.out, app);
          if (body.git) {
            line(
              ctx.out,
              `Created app ${app.name} from ${body.git.url} ${body.git.ref}. Build it with: minipaas git:build ${app.name}`,
            );
            return;
          }
          line(ctx.out, `Created app ${app.name}. Deploy it with: minipaas deploy DIR --app ${app.name}`);
        },
      );
  create(apps.command('create').description('create an app'));
  create(program.command('apps:create', { hidden: true }).description('create an app'));

  const info = (cmd: Command) =>
    cmd
      .argument('<app>', 'app name or id')
      .option('--json', 'print JSON')
      .addHelpText('after', '\nExamples:\n  $ minipaas apps info hello\n  $ minipaas apps info hello --json')
      .action(async (name: string, opts: { json?: boolean }, c: Command) => {
        const client = await clientFor(c, ctx);
        const app = await client.getApp(name);
        const deployments = await client.listDeployments(app.id).catch(() => []);
        if (opts.json) return json(ctx.out, { app, deployments: deployments.slice(0, 5) });
        const o = ctx.out;
        line(o, `=== ${app.name}`);
        line(o, `Status:       ${paintStatus(o, app.status)}`);
        line(o, `Release:      ${app.currentRelease ? `v${app.currentRelease}` : '-'}`);
        line(o, `Runtime:      ${app.runtime}`);
        line(o, `URL:          ${cell(app.url)}`);
        line(o, `Path URL:     ${cell(app.pathUrl)}`);
        line(o, `Healthcheck:  ${cell(app.healthcheckPath)}`);
        line(
          o,
          `Env vars:     ${Object.keys(app.env ?? {}).join(', ') || '-'}   (values: minipaas env ${app.name})`,
        );
        line(o, `Created:      ${app.createdAt} (${ago(app.createdAt)})`);
        line(o, 'Processes:');
        for (const [type, p] of Object.entries(app.processes ?? {})) {
          line(o, `  ${type}=${p.instances}  ${p.command ?? '(from the release)'}`);
        }
        if (deployments.length) {
          line(o, 'Recent deployments:');
          o.out(
            table(
              ['ID', 'RELEASE', 'STATUS', 'SOURCE', 'CREATED', 'ERROR'],
              deployments
                .slice(0, 5)
                .map((d) => [
                  d.id,
                  d.release ? `v${d.release}` : '-',
                  paintStatus(o, d.status),
                  d.source,
                  ago(d.createdAt),
                  cell(d.error),
                ]),
            ).replace(/^/gm, '  '),
          );
        }
      });
  info(apps.command('info').description('show an app'));
  info(program.command('apps:info', { hidden: true }).description('show an app'));

  const destroy = (cmd: Command) =>
    cmd
      .argument('<app>', 'app name or id')
      .option('--confirm <app>', 'confirm by repeating the app name (required when not on a terminal)')
      .addHelpText(
        'after',
        '\nExamples:\n  $ minipaas apps destroy hello               # asks you to type the name\n  $ minipaas apps destroy hello --confirm hello',
      )
      .action(async (name: string, opts: { confirm?: string }, c: Command) => {
        if (opts.confirm !== undefined && opts.confirm !== name) {
          throw new CliError(`--confirm "${opts.confirm}" does not match the app name "${name}"`);
        }
        if (opts.confirm === undefined) {
          if (!process.stdin.isTTY)
            throw new CliError(`refusing to destroy ${name} without --confirm ${name}`);
          if (!(await confirmByTyping(name)))
            throw new CliError('the name did not match; nothing was destroyed');
        }
        const client = await clientFor(c, ctx);
        await client.deleteApp(name);
        line(ctx.out, `Destroyed ${name}.`);
      });
  destroy(
    apps
      .command('destroy')
      .alias('rm')
      .description('destroy an app: stop its instances, delete releases and logs'),
  );
  destroy(program.command('apps:destroy', { hidden: true }).description('destroy an app'));
}
