/**
 * The swarm toolkit's `minipaas deploy build|rollout|canary|routing` (also `deploy:build`, ...). They hang
 * under the platform's `deploy [DIR]` command: commander dispatches to a subcommand when the first
 * operand is its name, so a directory called `build` is deployed as `./build`.
 */
import type { ServiceOutcome } from '@minipaas/swarm';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import type { Context } from '../context.ts';
import { swarm } from '../lazy-imports.ts';
import { json, line, type Output } from '../output.ts';
import { envDir } from './shell.ts';

const DIR_HELP = 'environment directory (default: $MINIPAAS_ENV_DIR or .)';

/** Progress to stderr when stdout carries JSON. */
const progress = (ctx: Context, asJson: boolean | undefined): Output =>
  asJson ? { out: ctx.out.err, err: ctx.out.err, isTTY: false } : ctx.out;

function seconds(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`bad ${name} ${v}: use a number of seconds`);
  return n * 1000;
}

/**
 * The subcommand's options plus `--json` when commander gave it to the parent `deploy` command (which has
 * its own `--json` and, like every parent, recognises its options after the subcommand name too).
 */
function withParent<T extends { json?: boolean }>(opts: T, cmd: Command): T {
  const globals = cmd.optsWithGlobals<{ json?: boolean }>();
  return globals.json && !opts.json ? { ...opts, json: true } : opts;
}

function printOutcomes(p: Output, outcomes: readonly ServiceOutcome[]): void {
  for (const o of outcomes) line(p, `  ${o.service}: ${o.result} ${o.image}`);
}

export function registerToolkitDeploy(program: Command, ctx: Context): void {
  const deploy = program.commands.find((c) => c.name() === 'deploy') ?? program.command('deploy');
  deploy.addHelpText(
    'after',
    `
Swarm toolkit (an environment made by "minipaas code init"; docs/swarm.md):
  $ minipaas deploy build        # build and push the stack's images
  $ minipaas deploy rollout      # zero-downtime rolling update, rolls back by itself
  $ minipaas deploy canary web   # add a canary replica of the new image (--promote / --abort)
  $ minipaas deploy routing      # push the Caddy config
A directory with one of these names is deployed as ./build, ./rollout, ...`,
  );
  const both = (name: string, setup: (c: Command) => Command): void => {
    setup(deploy.command(name));
    setup(program.command(`deploy:${name}`, { hidden: true }));
  };

  both('build', (c) =>
    c
      .description(
        'build the stack images, push them to the private registry, write them to the override file',
      )
      .argument('[services...]', 'only these services (default: every service with a build section)')
      .option('--tag <tag>', 'image tag (default: the UTC time, e.g. 20261123-231005)')
      .option('--no-push', 'build and tag only (no push, compose files unchanged)')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the built images as JSON')
      .addHelpText(
        'after',
        `
Images are named REGISTRY/STACK/SERVICE:TAG (registry from minipaas.yaml) and built by the Docker
engine of the environment from each service's build context and Dockerfile.

Examples:
  $ minipaas deploy build
  $ minipaas deploy build web --tag v42 -C envs/prod`,
      )
      .action(
        async (
          services: string[],
          o: { tag?: string; push: boolean; dir?: string; json?: boolean },
          cmd: Command,
        ) => {
          const opts = withParent(o, cmd);
          const { buildImages, dockerClient, loadEnvironment } = await swarm();
          const env = loadEnvironment(envDir(opts, ctx));
          const p = progress(ctx, opts.json);
          const built = await buildImages(env, dockerClient(env.docker), {
            services,
            ...(opts.tag ? { tag: opts.tag } : {}),
            noPush: !opts.push,
            onProgress: (l) => line(p, l.startsWith('----->') ? l : `       ${l}`),
          });
          if (opts.json) return json(ctx.out, { images: built });
          for (const b of built) line(p, `${b.service}: ${b.image}${b.pushed ? ' (pushed)' : ''}`);
        },
      ),
  );

  both('rollout', (c) =>
    c
      .description(
        'zero-downtime rolling update of the stack (start-first, health-gated, automatic rollback)',
      )
      .option('--timeout <seconds>', 'give up after this long', '600')
      .option('--no-routing', 'do not update Caddy while the update runs')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the outcome per service as JSON')
      .addHelpText(
        'after',
        `
Runs "docker stack deploy" with the environment's compose files, then follows every service until
Swarm finished its update. A task replaces an old one only when its health check passes; a failing
update rolls back by itself and this command exits non-zero. Caddy's upstreams follow the running
tasks throughout.

Examples:
  $ minipaas deploy rollout
  $ minipaas deploy rollout -C envs/prod --timeout 300 --json`,
      )
      .action(
        async (o: { timeout: string; routing: boolean; dir?: string; json?: boolean }, cmd: Command) => {
          const opts = withParent(o, cmd);
          const { dockerClient, loadEnvironment, rollout } = await swarm();
          const env = loadEnvironment(envDir(opts, ctx));
          const p = progress(ctx, opts.json);
          line(p, `-----> Rolling out ${env.stack}`);
          const outcomes = await rollout(env, dockerClient(env.docker), {
            timeoutMs: seconds(opts.timeout, '--timeout') as number,
            ...(opts.routing ? {} : { routing: false }),
            onProgress: (l) => line(p, `       ${l}`),
          });
          if (opts.json) return json(ctx.out, { stack: env.stack, services: outcomes });
          line(p, `Rolled out ${env.stack}:`);
          printOutcomes(p, outcomes);
        },
      ),
  );

  both('canary', (c) =>
    c
      .description('run N replicas of the new image beside the old ones; --promote or --abort to finish')
      .argument('<service>', 'compose service')
      .option('--replicas <n>', 'canary replicas', '1')
      .option('--image <ref>', 'image of the new version (default: the one in the compose files)')
      .option('--promote', 'roll the canary image out to the service and remove the canary')
      .option('--abort', 'remove the canary (the old version keeps serving)')
      .option('--timeout <seconds>', 'give up after this long', '300')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        `
The canary is a service STACK_SERVICE_canary with the original's labels, networks and ports; Caddy
spreads requests over old and new tasks, so N canary replicas beside M old ones get N/(N+M) of them.

Examples:
  $ minipaas deploy build && minipaas deploy canary web
  $ minipaas deploy canary web --replicas 2
  $ minipaas deploy canary web --promote
  $ minipaas deploy canary web --abort`,
      )
      .action(
        async (
          service: string,
          o: {
            replicas: string;
            image?: string;
            promote?: boolean;
            abort?: boolean;
            timeout: string;
            dir?: string;
            json?: boolean;
          },
          cmd: Command,
        ) => {
          const opts = withParent(o, cmd);
          if (opts.promote && opts.abort) throw new CliError('give --promote or --abort, not both');
          const replicas = Number(opts.replicas);
          if (!Number.isInteger(replicas) || replicas < 1 || replicas > 100)
            throw new CliError(`bad --replicas ${opts.replicas}: use 1-100`);
          const timeoutMs = seconds(opts.timeout, '--timeout') as number;
          const { abortCanary, dockerClient, loadEnvironment, promoteCanary, startCanary } = await swarm();
          const env = loadEnvironment(envDir(opts, ctx));
          const docker = dockerClient(env.docker);
          const p = progress(ctx, opts.json);
          const say = (l: string): void => line(p, l.startsWith('----->') ? l : `       ${l}`);
          if (opts.abort) {
            const removed = await abortCanary(env, docker, service, { onProgress: say });
            if (opts.json) return json(ctx.out, { service, aborted: removed });
            if (!removed) line(p, `No canary of ${service} is running.`);
            return;
          }
          if (opts.promote) {
            const outcomes = await promoteCanary(env, docker, service, { timeoutMs, onProgress: say });
            if (opts.json) return json(ctx.out, { service, promoted: true, services: outcomes });
            line(p, `Promoted the canary of ${service}:`);
            return printOutcomes(p, outcomes);
          }
          const st = await startCanary(env, docker, service, {
            replicas,
            ...(opts.image ? { image: opts.image } : {}),
            timeoutMs,
            onProgress: say,
          });
          if (opts.json) return json(ctx.out, st);
          line(p, `Canary ${st.canary}: ${st.running}/${st.replicas} running ${st.image}`);
          line(p, `Then: minipaas deploy canary ${service} --promote   (or --abort)`);
        },
      ),
  );

  both('routing', (c) =>
    c
      .description(
        "push the Caddy HTTP configuration (base caddy.json + a route per exposed service) to Caddy's admin API",
      )
      .option('--dry-run', 'print the config instead of loading it')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the routes as JSON')
      .addHelpText(
        'after',
        `
Each exposed service (code expose) gets a route for its domain whose upstreams are the host ports of
its running tasks (and of its canary). The admin API URL is caddy.admin in minipaas.yaml.

Examples:
  $ minipaas deploy routing
  $ minipaas deploy routing --dry-run > caddy-live.json`,
      )
      .action(async (o: { dryRun?: boolean; dir?: string; json?: boolean }, cmd: Command) => {
        const opts = withParent(o, cmd);
        const {
          baseCaddyConfig,
          caddyConfig,
          collectRoutes,
          dockerClient,
          loadCaddyConfig,
          loadEnvironment,
        } = await swarm();
        const env = loadEnvironment(envDir(opts, ctx));
        const routes = await collectRoutes(env, dockerClient(env.docker));
        const cfg = caddyConfig(baseCaddyConfig(env), routes);
        if (opts.dryRun) return json(ctx.out, cfg);
        await loadCaddyConfig(env.caddy.admin, cfg);
        if (opts.json) return json(ctx.out, { admin: env.caddy.admin, routes });
        line(ctx.out, `Loaded the Caddy config into ${env.caddy.admin}:`);
        if (routes.length === 0)
          line(ctx.out, '  no exposed services (minipaas code expose SERVICE --domain D)');
        for (const r of routes)
          line(
            ctx.out,
            `  ${r.domain}${r.path ?? ''} -> ${r.upstreams.join(' ') || '(no running task: 503)'}`,
          );
      }),
  );
}
