/**
 * `minipaas nodes`, `nodes:drain NODE`, `nodes:activate NODE` and `cron`: the nodes of the swarm the
 * `swarm` runtime runs on, and the services minipaasd runs on a cron schedule (docs/swarm.md). Everything
 * goes through the API (`/api/v1/nodes`, `/api/v1/cron`), so it works against a remote platform too.
 */
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, json, line, table } from '../output.ts';

interface NodeView {
  id: string;
  name: string;
  role: string;
  availability: string;
  state: string;
  address: string;
  leader: boolean;
  engine: string;
  tasks: number;
}

interface CronJobView {
  service: string;
  schedule: string;
  skipRunning: boolean;
  replicas: number;
  runs: { task: string; state: string; exitCode?: number; at: string }[];
}

const NODE_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,252}$/;

function nodeRow(n: NodeView): string[] {
  return [
    n.name,
    n.id.slice(0, 12),
    n.role + (n.leader ? ' (leader)' : ''),
    n.availability,
    n.state,
    n.address,
    String(n.tasks),
  ];
}

const NODE_HEADERS = ['NAME', 'ID', 'ROLE', 'AVAILABILITY', 'STATE', 'ADDRESS', 'TASKS'];

export function registerNodes(program: Command, ctx: Context): void {
  program
    .command('nodes')
    .description('list the nodes of the swarm runtime with role, availability, state and tasks')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Needs the swarm runtime (swarm.host in the platform config, docs/swarm.md).

Examples:
  $ minipaas nodes
  $ minipaas nodes --json`,
    )
    .action(async (opts: { json?: boolean }, c: Command) => {
      const { nodes } = await (await clientFor(c, ctx)).request<{ nodes: NodeView[] }>(
        'GET',
        '/api/v1/nodes',
      );
      if (opts.json) return json(ctx.out, { nodes });
      ctx.out.out(`${table(NODE_HEADERS, nodes.map(nodeRow))}\n`);
    });

  for (const [name, verb, path, help] of [
    [
      'nodes:drain',
      'drain',
      'drain',
      'stop scheduling tasks on a node: Swarm moves its tasks to the other nodes',
    ],
    ['nodes:activate', 'activate', 'activate', 'let Swarm schedule tasks on a drained node again'],
  ] as const) {
    program
      .command(`${name} <node>`)
      .description(help)
      .option('--json', 'print JSON')
      .addHelpText(
        'after',
        `
NODE is a node's name (as "minipaas nodes" shows it), hostname, id or id prefix (6+ characters).

Examples:
  $ minipaas ${name} worker-2
  $ minipaas ${name} 3k2j9x1q7d0v --json`,
      )
      .action(async (node: string, opts: { json?: boolean }, c: Command) => {
        if (!NODE_RE.test(node)) throw new CliError(`bad node name ${JSON.stringify(node)}`);
        if (!opts.json) line(ctx.out, `-----> ${verb === 'drain' ? 'Draining' : 'Activating'} ${node}`);
        const r = await (await clientFor(c, ctx)).request<{ node: NodeView }>(
          'POST',
          `/api/v1/nodes/${encodeURIComponent(node)}/${path}`,
        );
        if (opts.json) return json(ctx.out, r);
        ctx.out.out(`${table(NODE_HEADERS, [nodeRow(r.node)])}\n`);
        if (verb === 'drain')
          line(ctx.out, 'Swarm moves its tasks to the other nodes ("minipaas nodes" shows them).');
      });
  }

  program
    .command('cron')
    .description('list the services run on a cron schedule in the swarm, with their recent runs')
    .option('--json', 'print JSON')
    .option('--runs <n>', 'runs shown per service', '5')
    .addHelpText(
      'after',
      `
minipaasd runs the scheduler (ADR 0013): a service with swarm-cronjob's labels (what "minipaas code cron"
writes: swarm.cronjob.enable, .schedule, .skip-running, .replicas) is started on its schedule; each run
is a task of the service.

Examples:
  $ minipaas cron
  $ minipaas cron --runs 20 --json`,
    )
    .action(async (opts: { json?: boolean; runs: string }, c: Command) => {
      const n = Number(opts.runs);
      if (!Number.isInteger(n) || n < 0 || n > 1000)
        throw new CliError(`bad --runs ${opts.runs}: use 0..1000`);
      const { jobs } = await (await clientFor(c, ctx)).request<{ jobs: CronJobView[] }>(
        'GET',
        '/api/v1/cron',
      );
      if (opts.json) return json(ctx.out, { jobs: jobs.map((j) => ({ ...j, runs: j.runs.slice(-n) })) });
      if (jobs.length === 0)
        return line(
          ctx.out,
          'No scheduled services. Schedule one with: minipaas code cron SERVICE --schedule "..."',
        );
      for (const j of jobs) {
        line(
          ctx.out,
          `${j.service}  "${j.schedule}"${j.skipRunning ? '  skip-running' : ''}  replicas ${j.replicas}  ${j.runs.length} runs`,
        );
        for (const r of j.runs.slice(-n))
          line(
            ctx.out,
            `  ${r.task.slice(0, 12)}  ${r.state}${r.exitCode !== undefined ? ` (exit ${r.exitCode})` : ''}  ${ago(r.at)}`,
          );
      }
    });
}
