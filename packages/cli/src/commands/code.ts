/**
 * `minipaas code init|expose|job|worker|cron` (also `code:init`, ...): scaffold a swarm environment and
 * rewrite its compose services into routed web services, one-off jobs, workers and cron tasks.
 */
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import type { Context } from '../context.ts';
import { swarm } from '../lazy-imports.ts';
import { json, line } from '../output.ts';
import { envDir } from './shell.ts';

const DIR_HELP = 'environment directory (default: $MINIPAAS_ENV_DIR or .)';

function intOption(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new CliError(`bad ${name} ${v}: use ${min}-${max}`);
  return n;
}

export function registerCode(program: Command, ctx: Context): void {
  const group = program
    .command('code')
    .description(
      'scaffold a swarm environment and turn compose services into web services, jobs, workers, cron',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ minipaas code init envs/prod --stack shop
  $ minipaas code expose web --domain shop.example.com --port 8080 -C envs/prod
  $ minipaas code worker mailer -C envs/prod
  $ minipaas code cron report --schedule "*/5 * * * *" -C envs/prod`,
    );

  const both = (name: string, setup: (c: Command) => Command): void => {
    setup(group.command(name));
    setup(program.command(`code:${name}`, { hidden: true }));
  };

  both('init', (c) =>
    c
      .description('create an environment: minipaas.yaml, compose.yaml, compose.override.yaml, caddy.json')
      .argument('[dir]', 'directory to create or fill', '.')
      .option('--stack <name>', 'stack name (default: the directory name)')
      .option('--docker-host <url>', 'Docker API of the swarm manager (unix:// or tcp://)')
      .option('--no-tls', 'talk plain TCP to a tcp:// Docker host (default: TLS with the certs directory)')
      .option('--cert-path <dir>', 'client certificate directory, relative to the environment', '.certs')
      .option('--registry <host:port>', 'private registry for deploy build', '127.0.0.1:5000')
      .option('--caddy-admin <url>', "Caddy's admin API", 'http://127.0.0.1:2019')
      .option('--http-listen <addr>', 'address Caddy serves HTTP on', ':80')
      .option('--no-https', 'do not let Caddy obtain certificates (plain HTTP)')
      .option('--json', 'print what was written as JSON')
      .addHelpText(
        'after',
        `
Refuses a directory that already has a minipaas.yaml; existing compose files are kept.

Examples:
  $ minipaas code init envs/prod
  $ minipaas code init envs/prod --stack shop --docker-host tcp://manager1.example.com:2376
  $ minipaas code init . --registry registry.internal:5000 --http-listen :8080 --no-https`,
      )
      .action(
        async (
          dir: string,
          opts: {
            stack?: string;
            dockerHost?: string;
            tls: boolean;
            certPath: string;
            registry: string;
            caddyAdmin: string;
            httpListen: string;
            https: boolean;
            json?: boolean;
          },
        ) => {
          const { initEnvironment } = await swarm();
          const r = initEnvironment({
            dir,
            ...(opts.stack ? { stack: opts.stack } : {}),
            ...(opts.dockerHost ? { dockerHost: opts.dockerHost } : {}),
            ...(opts.tls === false ? { tls: false } : {}),
            certPath: opts.certPath,
            registry: opts.registry,
            caddyAdmin: opts.caddyAdmin,
            httpListen: [opts.httpListen],
            automaticHttps: opts.https,
          });
          if (opts.json) return json(ctx.out, r);
          line(ctx.out, `Created environment ${r.stack} in ${r.dir}:`);
          for (const f of r.files) line(ctx.out, `  ${f}`);
          line(
            ctx.out,
            'Next: add services to compose.yaml, then minipaas code expose SERVICE --domain DOMAIN',
          );
        },
      ),
  );

  both('expose', (c) =>
    c
      .description(
        'route a public domain to a service through Caddy (labels, host-mode port, rolling updates)',
      )
      .argument('<service>', 'compose service')
      .requiredOption('--domain <domain>', 'public host name')
      .option('--port <port>', 'port the service listens on in its containers', '80')
      .option('--path <prefix>', 'only requests under this path prefix')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        `
Sets deploy.labels minipaas.http.domain/port, a host-mode port (Docker picks the host port of each task,
so old and new tasks can share a node) and, unless set, start-first update_config with automatic
rollback. "minipaas deploy routing" (and every rollout) then points Caddy at the running tasks.

Examples:
  $ minipaas code expose web --domain shop.example.com
  $ minipaas code expose api --domain shop.example.com --path /api --port 3000`,
      )
      .action(
        async (
          service: string,
          opts: { domain: string; port: string; path?: string; dir?: string; json?: boolean },
        ) => {
          const { exposeService, loadEnvironment } = await swarm();
          const env = loadEnvironment(envDir(opts, ctx));
          const port = intOption('--port', opts.port, 1, 65535) as number;
          const file = exposeService(env, service, {
            domain: opts.domain,
            port,
            ...(opts.path ? { path: opts.path } : {}),
          });
          if (opts.json) return json(ctx.out, { service, domain: opts.domain.toLowerCase(), port, file });
          line(
            ctx.out,
            `Exposed ${service} at ${opts.domain}${opts.path ?? ''} (container port ${port}) in ${file}.`,
          );
        },
      ),
  );

  both('worker', (c) =>
    c
      .description('turn services into long-running background workers (no ports, no route)')
      .argument('<services...>', 'compose services')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        '\nExamples:\n  $ minipaas code worker mailer\n  $ minipaas code worker mailer indexer -C envs/prod',
      )
      .action(async (services: string[], opts: { dir?: string; json?: boolean }) => {
        const { loadEnvironment, workerServices } = await swarm();
        const file = workerServices(loadEnvironment(envDir(opts, ctx)), services);
        if (opts.json) return json(ctx.out, { services, role: 'worker', file });
        line(
          ctx.out,
          `${services.join(', ')} ${services.length === 1 ? 'is a worker' : 'are workers'} (${file}).`,
        );
      }),
  );

  both('job', (c) =>
    c
      .description('turn services into one-off jobs (run to completion on each deploy, retried on failure)')
      .argument('<services...>', 'compose services')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        '\nExamples:\n  $ minipaas code job migrate\n  $ minipaas code job migrate seed -C envs/prod',
      )
      .action(async (services: string[], opts: { dir?: string; json?: boolean }) => {
        const { jobServices, loadEnvironment } = await swarm();
        const file = jobServices(loadEnvironment(envDir(opts, ctx)), services);
        if (opts.json) return json(ctx.out, { services, role: 'job', file });
        line(
          ctx.out,
          `${services.join(', ')} ${services.length === 1 ? 'is a one-off job' : 'are one-off jobs'} (${file}).`,
        );
      }),
  );

  both('cron', (c) =>
    c
      .description('schedule a service with a cron expression (swarm-cronjob labels)')
      .argument('<service>', 'compose service')
      .requiredOption('--schedule <cron>', 'cron expression: 5 fields, or 6 with seconds first')
      .option('--skip-running', 'do not start a run while the previous one still runs')
      .option('--replicas <n>', 'tasks per run', '1')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        `
The service gets replicas: 0, restart_policy none and the labels swarm.cronjob.enable, .schedule,
.skip-running and .replicas, which swarm-cronjob acts on.

Examples:
  $ minipaas code cron report --schedule "*/5 * * * *"
  $ minipaas code cron cleanup --schedule "0 3 * * *" --skip-running`,
      )
      .action(
        async (
          service: string,
          opts: { schedule: string; skipRunning?: boolean; replicas: string; dir?: string; json?: boolean },
        ) => {
          const { cronService, loadEnvironment } = await swarm();
          const replicas = intOption('--replicas', opts.replicas, 1, 1000) as number;
          const file = cronService(loadEnvironment(envDir(opts, ctx)), service, {
            schedule: opts.schedule,
            skipRunning: Boolean(opts.skipRunning),
            replicas,
          });
          if (opts.json)
            return json(ctx.out, {
              service,
              schedule: opts.schedule,
              skipRunning: Boolean(opts.skipRunning),
              replicas,
              file,
            });
          line(ctx.out, `${service} runs on "${opts.schedule}" (${file}).`);
        },
      ),
  );

  both('scheduler', (c) =>
    c
      .description(
        'run the cron scheduler in the foreground: starts services labelled by "code cron" on schedule',
      )
      .option('--all-stacks', "schedule labelled services of every stack, not only this environment's")
      .option('--refresh <seconds>', 'how often to look for labelled services', '5')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print one JSON event per line')
      .addHelpText(
        'after',
        `
Honours swarm-cronjob's labels (swarm.cronjob.enable, .schedule, .skip-running, .replicas): on each tick
it scales the service to its replicas and forces an update, so Swarm runs fresh tasks; with
skip-running, a tick is skipped while a task still runs. Runs are the service's tasks
(docker service ps STACK_SERVICE). Stops on Ctrl-C or SIGTERM.

Examples:
  $ minipaas code scheduler -C envs/prod
  $ minipaas code scheduler --all-stacks --json`,
      )
      .action(async (opts: { allStacks?: boolean; refresh: string; dir?: string; json?: boolean }) => {
        const refreshMs = Number(opts.refresh) * 1000;
        if (!Number.isFinite(refreshMs) || refreshMs < 1000)
          throw new CliError(`bad --refresh ${opts.refresh}: use >= 1`);
        const { CronScheduler, dockerClient, loadEnvironment } = await swarm();
        const env = loadEnvironment(envDir(opts, ctx));
        const scheduler = new CronScheduler({
          docker: dockerClient(env.docker),
          ...(opts.allStacks ? {} : { stack: env.stack }),
          refreshMs,
          onEvent: (e) =>
            opts.json
              ? line(ctx.out, JSON.stringify(e))
              : line(
                  ctx.out,
                  `${e.at} ${e.type} ${e.service}${e.schedule ? ` "${e.schedule}"` : ''}${e.message ? `: ${e.message}` : ''}`,
                ),
        });
        await scheduler.start();
        if (!opts.json)
          line(ctx.out, `Scheduling ${opts.allStacks ? 'every stack' : `stack ${env.stack}`}; Ctrl-C stops.`);
        await new Promise<void>((res) => {
          const done = (): void => {
            scheduler.stop();
            res();
          };
          process.once('SIGINT', done);
          process.once('SIGTERM', done);
        });
      }),
  );
}
