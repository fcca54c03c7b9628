/**
 * `deploy canary`: N extra tasks of the new image beside the old ones, as a service
 * `<stack>_<service>_canary` carrying the original's labels, networks and ports; Caddy spreads traffic
 * over old and new tasks alike. `--promote` rolls the new image out to the service and removes the
 * canary; `--abort` takes the canary out of Caddy, then removes it.
 */
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';
import { RoutingSync } from './caddy-routing.ts';
import { ComposeFile, mergedServices } from './compose-file.ts';
import { type RolloutOptions, rollout, type ServiceOutcome } from './stack-rollout.ts';
import {
  CANARY_LABEL,
  imageName,
  type ServiceInfo,
  STACK_LABEL,
  serviceTasks,
  stackServices,
} from './stack-services.ts';
import type { SwarmEnvironment } from './swarm-environment.ts';

/** Options of {@link startCanary}. */
export interface CanaryOptions {
  /** Canary tasks (default 1). */
  replicas?: number;
  /** Image of the new version (default: the service's image in the compose files). */
  image?: string;
  /** Give up (and remove the canary) when its tasks are not running after this long (default 5 min). */
  timeoutMs?: number;
  onProgress?: (line: string) => void;
}

/** State of a canary. */
export interface CanaryState {
  service: string;
  canary: string;
  image: string;
  replicas: number;
  running: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const canaryName = (env: SwarmEnvironment, service: string): string =>
  `${env.stack}_${service}_canary`;

async function liveService(env: SwarmEnvironment, docker: Docker, service: string): Promise<ServiceInfo> {
  const s = (await stackServices(docker, env.stack)).find((x) => x.Spec.Name === `${env.stack}_${service}`);
  if (!s)
    throw new MinipaasError(
      'MINIPAAS_ERR_NOT_FOUND',
      `service ${env.stack}_${service} is not running: deploy the stack first (minipaas deploy rollout)`,
    );
  return s;
}

async function findCanary(docker: Docker, name: string): Promise<ServiceInfo | undefined> {
  const list = (await docker.listServices({
    filters: JSON.stringify({ name: [name] }),
  })) as unknown as ServiceInfo[];
  return list.find((s) => s.Spec.Name === name);
}

async function syncRouting(env: SwarmEnvironment, docker: Docker, say: (l: string) => void): Promise<void> {
  const r = await new RoutingSync(env, docker).sync(true);
  say(`routing: ${r.routes.map((x) => `${x.domain} -> ${x.upstreams.join(' ') || '(none)'}`).join('; ')}`);
}

const exposes = (s: ServiceInfo): boolean => Boolean(s.Spec.Labels?.['minipaas.http.domain']);

/** Starts (or resizes) the canary of `service` and waits until its tasks run. */
export async function startCanary(
  env: SwarmEnvironment,
  docker: Docker,
  service: string,
  opts: CanaryOptions = {},
): Promise<CanaryState> {
  const replicas = opts.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `bad --replicas ${opts.replicas}: use a whole number >= 1`,
    );
  const say = opts.onProgress ?? (() => {});
  const live = await liveService(env, docker, service);
  const composeImage = mergedServices(env.composeFiles.map((p) => ComposeFile.load(p))).get(service)?.image;
  const image = opts.image ?? composeImage;
  if (!image)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `service ${service} has no image in the compose files`,
    );
  if (imageName(image) === imageName(live.Spec.TaskTemplate.ContainerSpec.Image))
    throw new MinipaasError(
      'MINIPAAS_ERR_CONFLICT',
      `${live.Spec.Name} already runs ${imageName(image)}: build a new image first (minipaas deploy build) or pass --image`,
    );
  const name = canaryName(env, service);
  const labels: Record<string, string> = { ...(live.Spec.Labels ?? {}), [CANARY_LABEL]: live.Spec.Name };
  delete labels[STACK_LABEL];
  const spec = {
    ...live.Spec,
    Name: name,
    Labels: labels,
    Mode: { Replicated: { Replicas: replicas } },
    TaskTemplate: {
      ...live.Spec.TaskTemplate,
      ContainerSpec: { ...live.Spec.TaskTemplate.ContainerSpec, Image: image },
    },
  };
  const existing = await findCanary(docker, name);
  if (existing) {
    say(`-----> Updating canary ${name}: ${replicas} × ${image}`);
    await docker
      .getService(existing.ID)
      .update({ _query: { version: existing.Version.Index }, _body: spec } as never);
  } else {
    say(`-----> Starting canary ${name}: ${replicas} × ${image}`);
    await docker.createService(spec as never);
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  for (;;) {
    const tasks = (await serviceTasks(docker, name)).filter((t) => t.DesiredState === 'running');
    const running = tasks.filter(
      (t) => t.Status.State === 'running' && imageName(t.Spec?.ContainerSpec?.Image) === imageName(image),
    );
    if (running.length === replicas) {
      if (exposes(live)) await syncRouting(env, docker, say);
      return { service: live.Spec.Name, canary: name, image, replicas, running: running.length };
    }
    if (Date.now() > deadline) {
      await abortCanary(env, docker, service, { onProgress: say });
      throw new MinipaasError(
        'MINIPAAS_ERR_CONFLICT',
        `canary ${name} did not become healthy in time (${running.length}/${replicas} running); it was removed`,
      );
    }
    await sleep(500);
  }
}

/** Takes the canary out of Caddy, then removes it. */
export async function abortCanary(
  env: SwarmEnvironment,
  docker: Docker,
  service: string,
  opts: { onProgress?: (line: string) => void } = {},
): Promise<boolean> {
  const say = opts.onProgress ?? (() => {});
  const name = canaryName(env, service);
  const c = await findCanary(docker, name);
  if (!c) return false;
  // Scale to 0 first so its tasks leave Caddy's upstreams before they stop.
  await docker.getService(c.ID).update({
    _query: { version: c.Version.Index },
    _body: { ...c.Spec, Mode: { Replicated: { Replicas: 0 } } },
  } as never);
  // Wait until Swarm no longer wants any canary task running, so the routes leave them out.
  const deadline = Date.now() + 30_000;
  while (
    Date.now() < deadline &&
    (await serviceTasks(docker, name)).some((t) => t.DesiredState === 'running')
  )
    await sleep(200);
  if (exposes(c)) await syncRouting(env, docker, say);
  await docker.getService(c.ID).remove();
  say(`-----> Removed canary ${name}`);
  return true;
}

/** Rolls the canary's image out to the service (through the compose override), then removes the canary. */
export async function promoteCanary(
  env: SwarmEnvironment,
  docker: Docker,
  service: string,
  opts: RolloutOptions = {},
): Promise<ServiceOutcome[]> {
  const name = canaryName(env, service);
  const c = await findCanary(docker, name);
  if (!c)
    throw new MinipaasError(
      'MINIPAAS_ERR_NOT_FOUND',
      `no canary of ${service} (start one with: minipaas deploy canary ${service})`,
    );
  const image = imageName(c.Spec.TaskTemplate.ContainerSpec.Image);
  const override = ComposeFile.load(env.overrideCompose);
  if (mergedServices(env.composeFiles.map((p) => ComposeFile.load(p))).get(service)?.image !== image) {
    override.set(['services', service, 'image'], image);
    override.save();
  }
  const outcomes = await rollout(env, docker, opts);
  await abortCanary(env, docker, service, opts);
  return outcomes;
}
