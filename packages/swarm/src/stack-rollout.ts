/**
 * `deploy rollout`: `docker stack deploy` of the environment's compose files, then a watch of every
 * service until its update completed or Swarm rolled it back. Updates are start-first and gated on the
 * container health check (`code expose` and `code worker` set `update_config`/`rollback_config`), so a
 * new task replaces an old one only once it is healthy, and a failing update rolls back by itself.
 * While it runs, Caddy's upstreams follow the running tasks.
 */
import { existsSync } from 'node:fs';
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';
import { RoutingSync } from './caddy-routing.ts';
import { requireCommands, runChecked, runCommand } from './command-runner.ts';
import {
  imageName,
  type ServiceInfo,
  serviceTasks,
  stackServices,
  wantedReplicas,
} from './stack-services.ts';
import { dockerProcessEnv, type SwarmEnvironment } from './swarm-environment.ts';

let detachFlag: boolean | undefined;

/** Runs `docker stack deploy` for the environment (detached: this module watches the update itself). */
export async function deployStack(env: SwarmEnvironment, extraArgs: readonly string[] = []): Promise<string> {
  requireCommands(['docker']);
  const penv = dockerProcessEnv(env.docker);
  if (detachFlag === undefined) {
    const help = await runCommand('docker', ['stack', 'deploy', '--help'], { env: penv });
    detachFlag = /--detach/.test(help.stdout);
  }
  const files = env.composeFiles.filter((f) => existsSync(f));
  if (files.length === 0)
    throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', 'no compose file of the environment exists');
  const args = ['stack', 'deploy', ...(detachFlag ? ['--detach=true'] : [])];
  for (const f of files) args.push('-c', f);
  args.push('--with-registry-auth', '--prune', ...extraArgs, env.stack);
  return runChecked('docker', args, { env: penv, cwd: env.dir });
}

/** Removes the stack (`docker stack rm`). */
export async function removeStack(env: SwarmEnvironment): Promise<void> {
  requireCommands(['docker']);
  await runChecked('docker', ['stack', 'rm', env.stack], { env: dockerProcessEnv(env.docker), cwd: env.dir });
}

/** How one service's update ended. */
export interface ServiceOutcome {
  service: string;
  image: string;
  /**
   * `updated` (new spec running), `unchanged`, `rolled-back`, `paused` (failure_action pause), `failed`
   * (tasks keep failing outside an update, e.g. the first deploy of a broken image), `job`.
   */
  result: 'updated' | 'unchanged' | 'rolled-back' | 'paused' | 'failed' | 'job';
  message?: string;
}

/** Options of {@link rollout}. */
export interface RolloutOptions {
  /** Give up after this many milliseconds (default 10 minutes). */
  timeoutMs?: number;
  /** Keep Caddy's upstreams in step with the running tasks (default: when the stack exposes a service). */
  routing?: boolean;
  /** Progress lines. */
  onProgress?: (line: string) => void;
  /** Poll interval (default 500 ms). */
  intervalMs?: number;
  /**
   * A service counts as up once the same tasks have been running for this long (default 3000 ms), so
   * a container that starts and crashes is not mistaken for a finished update.
   */
  settleMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Loads Caddy's config when the routes changed, and says so (one `routing:` line per load). */
async function pushRoutes(routing: RoutingSync, say: (line: string) => void): Promise<void> {
  const r = await routing.sync();
  if (r.pushed)
    say(`routing: ${r.routes.map((x) => `${x.domain} -> ${x.upstreams.join(' ') || '(none)'}`).join('; ')}`);
}

/**
 * The ids of the running tasks when every wanted task of a service runs its current spec, else
 * undefined.
 */
async function converged(docker: Docker, s: ServiceInfo): Promise<string | undefined> {
  const want = wantedReplicas(s);
  if (want === undefined) return 'global'; // global services: Swarm's update status is enough
  const image = imageName(s.Spec.TaskTemplate.ContainerSpec.Image);
  const tasks = (await serviceTasks(docker, s.Spec.Name)).filter((t) => t.DesiredState === 'running');
  const ready = tasks.filter(
    (t) => t.Status.State === 'running' && imageName(t.Spec?.ContainerSpec?.Image) === image,
  );
  if (ready.length !== want || tasks.length !== want) return undefined;
  return ready
    .map((t) => t.ID)
    .sort()
    .join(',');
}

/** The error of the latest failed task when tasks of the current spec keep failing and none runs. */
async function crashLooping(docker: Docker, s: ServiceInfo): Promise<string | undefined> {
  const image = imageName(s.Spec.TaskTemplate.ContainerSpec.Image);
  const tasks = (await serviceTasks(docker, s.Spec.Name)).filter(
    (t) => imageName(t.Spec?.ContainerSpec?.Image) === image,
  );
  if (tasks.some((t) => t.Status.State === 'running')) return undefined;
  const failed = tasks.filter((t) => ['failed', 'rejected'].includes(t.Status.State));
  if (failed.length < 3) return undefined;
  const last = failed[failed.length - 1];
  return `${failed.length} tasks failed: ${last?.Status.Err ?? last?.Status.Message ?? 'no message'}`;
}

const isJob = (s: ServiceInfo): boolean => Boolean(s.Spec.Mode?.ReplicatedJob || s.Spec.Mode?.GlobalJob);

/**
 * Waits for the services of the stack to finish their updates; with `before`, tells apart an update
 * started by this rollout from an older one.
 */
export async function watchUpdates(
  env: SwarmEnvironment,
  docker: Docker,
  before: Map<string, ServiceInfo>,
  opts: RolloutOptions = {},
): Promise<ServiceOutcome[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
  const interval = opts.intervalMs ?? 500;
  const say = opts.onProgress ?? (() => {});
  let routing: RoutingSync | undefined;
  const done = new Map<string, ServiceOutcome>();
  const lastState = new Map<string, string>();
  const settle = opts.settleMs ?? 3000;
  const seen = new Map<string, { ids: string; since: number }>();
  let routingFailed: string | undefined;
  /** True once the same running tasks were seen for `settle` ms. */
  const settled = async (s: ServiceInfo): Promise<boolean> => {
    const ids = await converged(docker, s);
    if (ids === undefined) {
      seen.delete(s.Spec.Name);
      return false;
    }
    const cur = seen.get(s.Spec.Name);
    if (!cur || cur.ids !== ids) {
      seen.set(s.Spec.Name, { ids, since: Date.now() });
      return settle === 0;
    }
    return Date.now() - cur.since >= settle;
  };
  for (;;) {
    const services = await stackServices(docker, env.stack);
    if (!routingFailed && (opts.routing ?? services.some((s) => s.Spec.Labels?.['minipaas.http.domain']))) {
      routing ??= new RoutingSync(env, docker);
      try {
        await pushRoutes(routing, say);
      } catch (err) {
        // The update goes on in Swarm either way: keep watching it, and say so once.
        routingFailed = err instanceof Error ? err.message : String(err);
        say(`routing: not updated (${routingFailed}); run "minipaas deploy routing" once Caddy is back`);
      }
    }
    for (const s of services) {
      const name = s.Spec.Name;
      if (done.has(name)) continue;
      const image = imageName(s.Spec.TaskTemplate.ContainerSpec.Image);
      if (isJob(s)) {
        done.set(name, { service: name, image, result: 'job' });
        continue;
      }
      const prev = before.get(name);
      const st = s.UpdateStatus;
      const fresh = st?.StartedAt !== undefined && st.StartedAt !== prev?.UpdateStatus?.StartedAt;
      const state = fresh ? (st?.State ?? '') : '';
      if (state && state !== lastState.get(name)) {
        say(`${name}: ${state}${st?.Message ? ` (${st.Message})` : ''}`);
        lastState.set(name, state);
      }
      if (state === 'rollback_completed' || state === 'rollback_paused') {
        if (await settled(s))
          done.set(name, { service: name, image, result: 'rolled-back', message: st?.Message ?? '' });
        continue;
      }
      if (state === 'paused') {
        done.set(name, { service: name, image, result: 'paused', message: st?.Message ?? '' });
        continue;
      }
      if (state === 'updating' || state === 'rollback_started') continue;
      if (await settled(s)) {
        const changed = !prev || prev.Version.Index !== s.Version.Index;
        done.set(name, { service: name, image, result: changed ? 'updated' : 'unchanged' });
        say(`${name}: ${changed ? 'running' : 'unchanged'} ${image}`);
        continue;
      }
      const crash = await crashLooping(docker, s);
      if (crash) {
        done.set(name, { service: name, image, result: 'failed', message: crash });
        say(`${name}: failed (${crash})`);
      }
    }
    if (services.length > 0 && services.every((s) => done.has(s.Spec.Name))) {
      if (routing && !routingFailed) await pushRoutes(routing, say);
      return services.map((s) => done.get(s.Spec.Name) as ServiceOutcome);
    }
    if (Date.now() > deadline)
      throw new MinipaasError(
        'MINIPAAS_ERR_INTERNAL',
        `rollout of ${env.stack} did not finish in time; still updating: ${services
          .filter((s) => !done.has(s.Spec.Name))
          .map((s) => s.Spec.Name)
          .join(', ')}`,
      );
    await sleep(interval);
  }
}

/** Deploys the stack and watches the update; throws when a service rolled back or paused. */
export async function rollout(
  env: SwarmEnvironment,
  docker: Docker,
  opts: RolloutOptions = {},
): Promise<ServiceOutcome[]> {
  const before = new Map((await stackServices(docker, env.stack)).map((s) => [s.Spec.Name, s]));
  opts.onProgress?.(`docker stack deploy ${env.stack}`);
  await deployStack(env);
  const outcomes = await watchUpdates(env, docker, before, opts);
  const failed = outcomes.filter((o) => ['rolled-back', 'paused', 'failed'].includes(o.result));
  const what = (o: ServiceOutcome): string =>
    o.result === 'rolled-back' ? 'rolled back' : o.result === 'paused' ? 'paused' : 'failed';
  if (failed.length > 0)
    throw new MinipaasError(
      'MINIPAAS_ERR_CONFLICT',
      `rollout failed: ${failed
        .map((f) => `${f.service} ${what(f)}${f.message ? ` (${f.message})` : ''}`)
        .join(
          '; ',
        )}${failed.some((f) => f.result !== 'failed') ? '; the previous version keeps serving' : ''}`,
      { details: { outcomes } },
    );
  return outcomes;
}
