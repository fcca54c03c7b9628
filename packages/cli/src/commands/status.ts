/** `minipaas status` and `minipaas ps APP`. */
import type { Command } from 'commander';
import type { InstanceView } from '../api-client.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, cell, colors, duration, json, line, table } from '../output.ts';
import { appsTable, paintStatus } from './apps.ts';
import { usageCells } from './resources.ts';

export function lastExit(i: Pick<InstanceView, 'lastExitCode' | 'lastExitSignal'>): string {
  if (i.lastExitSignal) return i.lastExitSignal;
  if (i.lastExitCode !== null && i.lastExitCode !== undefined) return `code ${i.lastExitCode}`;
  return '-';
}

export function uptime(i: Pick<InstanceView, 'status' | 'startedAt'>, now = Date.now()): string {
  if (!i.startedAt) return '-';
  const t = Date.parse(i.startedAt);
  if (Number.isNaN(t)) return '-';
  return i.status === 'running' ? `up ${duration(now - t)}` : `started ${ago(i.startedAt, now)}`;
}

export function registerStatus(program: Command, ctx: Context): void {
  program
    .command('status')
    .description('platform status: API, router, agent and a summary of the apps')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas status\n  $ minipaas status --json')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const client = await clientFor(cmd, ctx);
      const [status, apps] = await Promise.all([client.status(), client.listApps()]);
      if (opts.json) return json(ctx.out, { ...status, appList: apps });
      const o = ctx.out;
      const c = colors(o.isTTY);
      const agent = status.agent;
      line(o, `MiniPaaS ${status.version}`);
      line(o, `  API:     ${status.api?.url ?? client.url}`);
      line(o, `  Router:  ${status.router?.url ?? '-'}  (base domain ${status.router?.baseDomain ?? '-'})`);
      if (agent && agent.ok !== false && agent.pid) {
        const up = agent.startedAt ? `, up ${duration(Date.now() - Date.parse(agent.startedAt))}` : '';
        line(o, `  Agent:   ${c.green('ok')} (pid ${agent.pid}${up}, ${agent.instances ?? 0} instances)`);
      } else {
        line(o, `  Agent:   ${c.red('unreachable')}${agent?.error ? ` (${agent.error})` : ''}`);
      }
      const s = status.apps;
      line(
        o,
        `  Apps:    ${s?.total ?? apps.length} total, ${s?.running ?? 0} running, ${s?.failed ?? 0} failed`,
      );
      if (apps.length) {
        line(o);
        o.out(appsTable(o, apps));
      }
    });

  program
    .command('ps')
    .description('list the instances (processes) of an app')
    .argument('<app>', 'app name or id')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas ps hello\n  $ minipaas ps hello --json')
    .action(async (app: string, opts: { json?: boolean }, cmd: Command) => {
      const client = await clientFor(cmd, ctx);
      const instances = await client.instances(app);
      if (opts.json) return json(ctx.out, { instances });
      const o = ctx.out;
      if (instances.length === 0) {
        line(
          o,
          `${app} has no instances. Deploy it (minipaas deploy) or scale it up (minipaas scale ${app} web=1).`,
        );
        return;
      }
      o.out(
        table(
          [
            'ID',
            'TYPE',
            'RELEASE',
            'PID',
            'PORT',
            'STATUS',
            'RESTARTS',
            'LAST EXIT',
            'STARTED',
            'CPU',
            'MEM',
          ],
          instances.map((i) => [
            i.id,
            i.processType,
            cell(i.release),
            cell(i.pid),
            cell(i.port),
            paintStatus(o, i.status),
            String(i.restarts ?? 0),
            lastExit(i),
            uptime(i),
            ...usageCells(i),
          ]),
        ),
      );
      const failing = instances.filter((i) => i.error);
      for (const i of failing) line(o, `${colors(o.isTTY).red('!')} ${i.id}: ${i.error}`);
      const unenforced = instances.find((i) => i.limits?.mode === 'unsupported');
      if (unenforced) line(o, `resource limits not enforced: ${unenforced.limits?.reason ?? 'unsupported'}`);
    });
}
