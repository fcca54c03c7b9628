/**
 * The `swarm` runtime driver: every process type of a platform app is a Docker Swarm service
 * (`minipaas-APP-TYPE`, see service-spec.ts) on a manager reached over the (TLS) Engine API. Swarm keeps
 * the desired state, so the driver keeps none: the app's rollout is read back from the services' labels,
 * update status and tasks. Images are pushed to the private registry first so every node can pull them;
 * secret env vars become versioned Docker secrets. After each change the edge (Caddy) is re-synced.
 */
import { createHash } from 'node:crypto';
import {
  type InstanceStatus,
  type LogLine,
  type LogQuery,
  MinipaasError,
  type RuntimeAppState,
  type RuntimeDriver,
  type RuntimeHealth,
  type RuntimeInstance,
  type RuntimeSpec,
} from '@minipaas/core';
import { type CronRun, cronRuns, imageName, LABELS, nodeAddresses } from '@minipaas/swarm';
import type Docker from 'dockerode';
import { LogFrames } from './log-frames.ts';
import {
  cronProcess,
  cronServiceSpec,
  IMAGE_CMD,
  type SecretRef,
  SWARM_LABEL,
  SWARM_WEB_PORT,
  secretRefs,
  serviceName,
  serviceSpec,
} from './service-spec.ts';
import type { SwarmEdge } from './swarm-edge.ts';
import {
  listSwarmNodes,
  type NodeAvailability,
  nodeNames,
  type SwarmNodeInfo,
  setNodeAvailability,
} from './swarm-nodes.ts';

/** A service run on a cron schedule, and its runs (tasks), oldest first. */
export interface CronJobView {
  service: string;
  schedule: string;
  skipRunning: boolean;
  replicas: number;
  runs: CronRun[];
}

/** Options of the {@link SwarmDriver}. */
export interface SwarmDriverOptions {
  /** Engine API of a Swarm manager (over TLS for a remote one). */
  docker: Docker;
  /**
   * Private registry (`host:port`) every node pulls from. Images built on {@link pushEngine} are tagged
   * `REGISTRY/REF` and pushed there before a service uses them. Unset: the image reference is used as is
   * (single-node swarms, or images already in a registry).
   */
  registry?: string;
  /** Engine that holds the built images and pushes them (default: {@link docker}). */
  pushEngine?: Docker;
  /**
   * The same registry as the push engine reaches it (e.g. `127.0.0.1:5000` on the platform host, where a
   * loopback registry needs no TLS) when that differs from the address the nodes pull from; default
   * {@link registry}.
   */
  pushRegistry?: string;
  /** Overlay network of the platform's services (created when missing; default `minipaas-swarm`). */
  network?: string;
  /** Placement constraints of every service, e.g. `node.labels.pool==apps`. */
  constraints?: string[];
  /** SIGTERM → SIGKILL grace of a task (ms, default 10 s). */
  stopGraceMs?: number;
  /** How long Swarm watches each updated task before it moves on (ms, default 3 s). */
  monitorMs?: number;
  /** Tasks of a new release that may fail before the rollout is called failed (default 3). */
  maxFailedTasks?: number;
  /** Caddy edge re-synced after every change (and by {@link SwarmDriver.syncEdge}). */
  edge?: SwarmEdge;
  /** Warnings (an edge sync that failed); default: none. */
  onWarning?: (msg: string, err?: unknown) => void;
}

interface ServiceInfo {
  ID: string;
  Version: { Index: number };
  CreatedAt?: string;
  UpdatedAt?: string;
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    Mode?: { Replicated?: { Replicas?: number } };
    TaskTemplate: { ContainerSpec?: { Image?: string }; ForceUpdate?: number } & Record<string, unknown>;
  } & Record<string, unknown>;
  UpdateStatus?: { State?: string; Message?: string; CompletedAt?: string; StartedAt?: string };
  PreviousSpec?: { Labels?: Record<string, string> };
}

interface TaskInfo {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  Slot?: number;
  CreatedAt?: string;
  DesiredState: string;
  Spec?: { ContainerSpec?: { Labels?: Record<string, string> } };
  Status: {
    State: string;
    Timestamp?: string;
    Err?: string;
    ContainerStatus?: { ExitCode?: number };
    PortStatus?: { Ports?: { TargetPort?: number; PublishedPort?: number }[] };
  };
}

const TASK_STATUS: Record<string, InstanceStatus> = {
  new: 'pending',
  pending: 'pending',
  assigned: 'pending',
  accepted: 'pending',
  preparing: 'starting',
  ready: 'starting',
  starting: 'starting',
  running: 'running',
  complete: 'stopped',
  shutdown: 'stopped',
  failed: 'crashed',
  rejected: 'failed',
  remove: 'stopping',
  orphaned: 'failed',
};

/** Digest of the spec of one process type (a change of it updates that service). */
function digestOf(spec: RuntimeSpec, type: string, image: string): string {
  const { processes, cron, ...rest } = spec;
  const n = cronIndex(type);
  return createHash('sha256')
    .update(JSON.stringify({ rest, image, type, process: n ? cron?.[n - 1] : processes[type] }))
    .digest('base64url')
    .slice(0, 22);
}

/** Digest of an app's spec from the digests of its process types (a restart's `~generation` left out). */
function appDigest(byType: Map<string, string>): string {
  const parts = [...byType].map(([t, d]) => `${t}=${d.split('~')[0]}`).sort();
  return createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 22);
}

/** N of a cron job's process label `cron:N`, else 0. */
function cronIndex(type: string): number {
  const m = /^cron:(\d+)$/.exec(type);
  return m ? Number(m[1]) : 0;
}

/** How long after a remove() an apply() of the same app is refused (a stale reconciler pass). */
const REMOVED_GRACE_MS = 15_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class SwarmDriver implements RuntimeDriver {
  readonly name = 'swarm';
  readonly #o: SwarmDriverOptions & {
    network: string;
    stopGraceMs: number;
    monitorMs: number;
    maxFailedTasks: number;
  };
  readonly #chains = new Map<string, Promise<unknown>>();
  #networkReady = false;
  #timer: NodeJS.Timeout | null = null;
  /** Registry references this process pushed. */
  readonly #pushed = new Set<string>();
  /** Apps removed by this process, and when. */
  readonly #removed = new Map<string, number>();

  constructor(o: SwarmDriverOptions) {
    this.#o = { network: 'minipaas-swarm', stopGraceMs: 10_000, monitorMs: 3000, maxFailedTasks: 3, ...o };
  }

  get docker(): Docker {
    return this.#o.docker;
  }

  /** Runs `fn` after the previous change of `app` finished (one change of an app at a time). */
  async #serial<T>(app: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(app) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.#chains.set(app, next);
    try {
      return await next;
    } finally {
      if (this.#chains.get(app) === next) this.#chains.delete(app);
    }
  }

  async health(): Promise<RuntimeHealth> {
    const { docker } = this.#o;
    const [version, info, services] = await Promise.all([
      docker.version() as Promise<{ Version?: string }>,
      docker.info() as Promise<{ Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } }>,
      this.#services(),
    ]);
    const apps = new Set(services.map((s) => s.Spec.Labels?.[SWARM_LABEL.app]));
    const instances = services.reduce((n, s) => n + (s.Spec.Mode?.Replicated?.Replicas ?? 0), 0);
    return {
      ok: info.Swarm?.LocalNodeState === 'active' && info.Swarm.ControlAvailable === true,
      version: version.Version ?? 'unknown',
      apps: apps.size,
      instances,
    };
  }

  async #services(app?: string): Promise<ServiceInfo[]> {
    const label = [`${SWARM_LABEL.runtime}=swarm`];
    if (app) label.push(`${SWARM_LABEL.app}=${app}`);
    const list = (await this.#o.docker.listServices({
      filters: JSON.stringify({ label }),
    })) as unknown as ServiceInfo[];
    // A label filter is a prefix-free exact match, but keep only what is ours for certain.
    return list.filter((s) => !app || s.Spec.Labels?.[SWARM_LABEL.app] === app);
  }

  async #tasks(serviceIds: string[]): Promise<TaskInfo[]> {
    if (serviceIds.length === 0) return [];
    try {
      return (await this.#o.docker.listTasks({
        filters: JSON.stringify({ service: serviceIds }),
      })) as unknown as TaskInfo[];
    } catch (err) {
      // A service filter naming a removed service is a 404: filter the whole list here instead.
      if (!/not found/i.test(message(err))) throw err;
      const ids = new Set(serviceIds);
      const all = (await this.#o.docker.listTasks()) as unknown as TaskInfo[];
      return all.filter((t) => ids.has(t.ServiceID));
    }
  }

  async #ensureNetwork(): Promise<void> {
    if (this.#networkReady) return;
    const { docker, network } = this.#o;
    const list = (await docker.listNetworks({ filters: JSON.stringify({ name: [network] }) })) as {
      Name: string;
    }[];
    if (!list.some((n) => n.Name === network)) {
      try {
        await docker.createNetwork({
          Name: network,
          Driver: 'overlay',
          Attachable: true,
          Labels: { [SWARM_LABEL.runtime]: 'swarm' },
        });
      } catch (err) {
        if (!/already exists/i.test(message(err))) throw err;
      }
    }
    this.#networkReady = true;
  }

  /** The reference the nodes pull `ref` by: in the registry when there is one. */
  #registryRef(ref: string): string {
    const { registry } = this.#o;
    if (!registry || ref.startsWith(`${registry}/`)) return ref;
    return `${registry}/${ref.includes(':', ref.lastIndexOf('/') + 1) ? ref : `${ref}:latest`}`;
  }

  /** Tags `ref` for the registry on the build engine and pushes it (once per reference and process). */
  async #publish(ref: string, target: string): Promise<void> {
    const { registry } = this.#o;
    if (!registry || target === ref || this.#pushed.has(target)) return;
    const pushRegistry = this.#o.pushRegistry ?? registry;
    const engine = this.#o.pushEngine ?? this.#o.docker;
    const local = `${pushRegistry}/${target.slice(registry.length + 1)}`;
    const colon = local.lastIndexOf(':');
    const repo = local.slice(0, colon);
    const tag = local.slice(colon + 1);
    try {
      await engine.getImage(ref).tag({ repo, tag });
      const stream = (await engine
        .getImage(local)
        .push({ authconfig: {} } as never)) as unknown as NodeJS.ReadableStream;
      await new Promise<void>((resolve, reject) => {
        let failure: string | undefined;
        engine.modem.followProgress(
          stream,
          (err: Error | null) => (err ? reject(err) : failure ? reject(new Error(failure)) : resolve()),
          (ev: { error?: string; errorDetail?: { message?: string } }) => {
            if (ev.error || ev.errorDetail) failure = ev.errorDetail?.message ?? ev.error ?? 'push failed';
          },
        );
      });
    } catch (err) {
      throw new MinipaasError(
        'MINIPAAS_ERR_BUILD_FAILED',
        `pushing ${ref} to the registry ${pushRegistry} failed: ${message(err)}`,
      );
    }
    this.#pushed.add(target);
  }

  /** ENTRYPOINT + CMD of an image on the build engine (for a process that runs the image's command). */
  async #imageCommand(ref: string): Promise<string[] | undefined> {
    const engine = this.#o.pushEngine ?? this.#o.docker;
    const info = (await engine.getImage(ref).inspect()) as {
      Config?: { Entrypoint?: string[] | null; Cmd?: string[] | null };
    };
    const cmd = [...(info.Config?.Entrypoint ?? []), ...(info.Config?.Cmd ?? [])];
    return cmd.length ? cmd : undefined;
  }

  /** Creates the Docker secrets of `refs` that do not exist yet; returns every id by name. */
  async #secrets(app: string, refs: SecretRef[]): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    if (refs.length === 0) return ids;
    const existing = (await this.#o.docker.listSecrets({
      filters: JSON.stringify({ label: [`${SWARM_LABEL.app}=${app}`] }),
    })) as { ID: string; Spec?: { Name?: string } }[];
    for (const s of existing) if (s.Spec?.Name) ids.set(s.Spec.Name, s.ID);
    for (const r of refs) {
      if (ids.has(r.name)) continue;
      const created = (await this.#o.docker.createSecret({
        Name: r.name,
        Labels: { [SWARM_LABEL.app]: app, [SWARM_LABEL.runtime]: 'swarm' },
        Data: Buffer.from(r.value).toString('base64'),
      })) as { id?: string; ID?: string };
      ids.set(r.name, created.id ?? created.ID ?? '');
    }
    return ids;
  }

  /** Removes the app's secrets no service uses any more (a secret in use is refused by Swarm and kept). */
  async #pruneSecrets(app: string, keep: Set<string>): Promise<void> {
    const list = (await this.#o.docker.listSecrets({
      filters: JSON.stringify({ label: [`${SWARM_LABEL.app}=${app}`] }),
    })) as { ID: string; Spec?: { Name?: string } }[];
    for (const s of list) {
      if (keep.has(s.Spec?.Name ?? '')) continue;
      try {
        await this.#o.docker.getSecret(s.ID).remove();
      } catch (err) {
        if (!/in use|not found/i.test(message(err))) throw err;
      }
    }
  }

  apply(spec: RuntimeSpec): Promise<RuntimeAppState> {
    return this.#serial(spec.name, async () => {
      if (spec.artifact.kind !== 'image')
        throw new MinipaasError(
          'MINIPAAS_ERR_VALIDATION',
          `the swarm runtime runs images; release ${spec.release} of ${spec.name} is a directory`,
        );
      // A reconciler pass that read the app just before it was removed must not bring it back.
      const removedAt = this.#removed.get(spec.name);
      if (removedAt !== undefined && Date.now() - removedAt < REMOVED_GRACE_MS)
        throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `${spec.name} was just removed from the swarm`);
      const image = this.#registryRef(spec.artifact.ref);
      const current = new Map(
        (await this.#services(spec.name)).map((s) => [s.Spec.Labels?.[SWARM_LABEL.process] ?? '', s]),
      );
      // Process types, then app.json cron jobs (`cron:N`, run by minipaasd's scheduler).
      const types = [
        ...Object.keys(spec.processes).sort(),
        ...(spec.cron ?? []).map((_, i) => cronProcess(i + 1)),
      ];
      // A restart suffixes the digest (`~TIME`): the spec itself is unchanged.
      const changed = types.filter(
        (type) =>
          current.get(type)?.Spec.Labels?.[SWARM_LABEL.digest]?.split('~')[0] !== digestOf(spec, type, image),
      );
      if (changed.length > 0) {
        await this.#ensureNetwork();
        await this.#publish(spec.artifact.ref, image);
        const refs = secretRefs(spec);
        const secretIds = await this.#secrets(spec.name, refs);
        const needsImageCmd =
          refs.length > 0 && Object.values(spec.processes).some((p) => p.command === IMAGE_CMD);
        const imageCommand = needsImageCmd ? await this.#imageCommand(spec.artifact.ref) : undefined;
        for (const type of changed) {
          const o = {
            image,
            network: this.#o.network,
            constraints: this.#o.constraints ?? [],
            secretIds,
            digest: digestOf(spec, type, image),
            stopGraceMs: this.#o.stopGraceMs,
            monitorMs: this.#o.monitorMs,
          };
          const n = cronIndex(type);
          const body = n
            ? cronServiceSpec(spec, n, o)
            : serviceSpec(spec, type, { ...o, ...(imageCommand ? { imageCommand } : {}) });
          const existing = current.get(type);
          if (existing) await this.#update(existing, body);
          else await this.#o.docker.createService(body as never);
        }
      }
      for (const [type, s] of current) {
        if (types.includes(type)) continue;
        await this.#o.docker.getService(s.ID).remove();
      }
      await this.#syncEdge();
      const state = await this.#state(spec.name);
      if (!state) throw new Error(`no services of ${spec.name} after apply`);
      return state;
    });
  }

  async #update(s: ServiceInfo, body: Record<string, unknown>): Promise<void> {
    await this.#o.docker
      .getService(s.ID)
      .update({ _query: { version: s.Version.Index }, _body: body } as never);
  }

  async get(app: string): Promise<RuntimeAppState | null> {
    const state = await this.#state(app);
    if (state?.rollout.status === 'ready') {
      await this.#syncEdge();
      const keep = new Set<string>();
      for (const s of await this.#services(app)) {
        const tmpl = s.Spec.TaskTemplate as { ContainerSpec?: { Secrets?: { SecretName?: string }[] } };
        for (const x of tmpl.ContainerSpec?.Secrets ?? []) if (x.SecretName) keep.add(x.SecretName);
      }
      await this.#pruneSecrets(app, keep);
    }
    return state;
  }

  async #state(app: string): Promise<RuntimeAppState | null> {
    const services = await this.#services(app);
    if (services.length === 0) return null;
    const [tasks, nodes] = await Promise.all([this.#tasks(services.map((s) => s.ID)), this.#nodeNames()]);
    const main = services.find((s) => !s.Spec.Labels?.[SWARM_LABEL.cron]) ?? services[0];
    let release = main?.Spec.Labels?.[SWARM_LABEL.release] ?? '';
    let serving: string | null = release;
    let status: 'rolling' | 'ready' | 'failed' = 'ready';
    let error: string | undefined;
    const logTail: string[] = [];
    let updatedAt = '';
    /** Digest of the spec asked for, by process type. */
    const pushed = new Map<string, string>();
    for (const s of services) {
      const labels = s.Spec.Labels ?? {};
      const digest = labels[SWARM_LABEL.digest];
      pushed.set(labels[SWARM_LABEL.process] ?? '', digest ?? '');
      // A cron job's service has no task between runs: it is not part of the rollout.
      if (labels[SWARM_LABEL.cron]) continue;
      const want = s.Spec.Mode?.Replicated?.Replicas ?? 0;
      const mine = tasks.filter(
        (t) => t.ServiceID === s.ID && t.Spec?.ContainerSpec?.Labels?.[SWARM_LABEL.digest] === digest,
      );
      const up = mine.filter((t) => t.DesiredState === 'running' && t.Status.State === 'running').length;
      const failed = mine.filter((t) => ['failed', 'rejected'].includes(t.Status.State));
      const u = s.UpdateStatus?.State;
      if (s.UpdatedAt && s.UpdatedAt > updatedAt) updatedAt = s.UpdatedAt;
      if (u && /^rollback/.test(u)) {
        // Swarm rolled the service back: Spec is the serving one again, PreviousSpec the failed release.
        status = 'failed';
        error = `${labels[SWARM_LABEL.process]}: ${s.UpdateStatus?.Message ?? u}`;
        // Swarm drops PreviousSpec when it rolls back; the newest task of another digest names the release.
        const failedLabels = tasks
          .filter(
            (t) => t.ServiceID === s.ID && t.Spec?.ContainerSpec?.Labels?.[SWARM_LABEL.digest] !== digest,
          )
          .sort((a, b) => (b.CreatedAt ?? '').localeCompare(a.CreatedAt ?? ''))[0]?.Spec
          ?.ContainerSpec?.Labels;
        const failedRelease = failedLabels?.[SWARM_LABEL.release];
        // What was asked for is the failed spec: the reconciler must not push it again and again.
        if (failedLabels?.[SWARM_LABEL.digest])
          pushed.set(labels[SWARM_LABEL.process] ?? '', failedLabels[SWARM_LABEL.digest] ?? '');
        if (failedRelease) {
          serving = labels[SWARM_LABEL.release] ?? release;
          release = failedRelease;
        }
      } else if (u === 'paused') {
        status = 'failed';
        error = `${labels[SWARM_LABEL.process]}: ${s.UpdateStatus?.Message ?? u}`;
        serving = s.PreviousSpec?.Labels?.[SWARM_LABEL.release] ?? null;
      } else if (failed.length >= this.#o.maxFailedTasks && up < want) {
        status = 'failed';
        error = `${labels[SWARM_LABEL.process]}: ${failed.length} tasks failed (${failed.at(-1)?.Status.Err ?? 'exited'})`;
        serving = s.PreviousSpec?.Labels?.[SWARM_LABEL.release] ?? null;
      } else if (status !== 'failed' && (up < want || u === 'updating')) {
        status = 'rolling';
        serving = s.PreviousSpec?.Labels?.[SWARM_LABEL.release] ?? null;
      }
      for (const t of failed.slice(-3))
        logTail.push(`${t.ID.slice(0, 12)}: ${t.Status.Err ?? t.Status.State}`);
    }
    const instances: RuntimeInstance[] = tasks
      .filter((t) => t.DesiredState === 'running' || ['failed', 'rejected'].includes(t.Status.State))
      .filter(
        (t) => t.DesiredState === 'running' || Date.now() - Date.parse(t.Status.Timestamp ?? '') < 60_000,
      )
      .map((t) => this.#instance(t, services, tasks, nodes));
    return {
      name: app,
      specDigest: appDigest(pushed),
      release: status === 'ready' ? release : serving,
      rollout: {
        release,
        status,
        ...(error ? { error, logTail } : {}),
        updatedAt: updatedAt || new Date().toISOString(),
      },
      instances,
    };
  }

  #instance(
    t: TaskInfo,
    services: ServiceInfo[],
    all: TaskInfo[],
    nodes: Map<string, string>,
  ): RuntimeInstance {
    const labels = t.Spec?.ContainerSpec?.Labels ?? {};
    const port = t.Status.PortStatus?.Ports?.find((p) => p.TargetPort === SWARM_WEB_PORT)?.PublishedPort;
    const svc = services.find((s) => s.ID === t.ServiceID);
    const earlier = all.filter(
      (x) =>
        x.ServiceID === t.ServiceID &&
        x.Slot === t.Slot &&
        x.ID !== t.ID &&
        (x.CreatedAt ?? '') < (t.CreatedAt ?? ''),
    );
    const status = TASK_STATUS[t.Status.State] ?? 'pending';
    return {
      id: `${svc?.Spec.Name ?? t.ServiceID}.${t.Slot ?? 0}.${t.ID.slice(0, 12)}`,
      processType: labels[SWARM_LABEL.process] ?? '',
      release: labels[SWARM_LABEL.release] ?? '',
      status,
      restarts: earlier.filter((x) => ['failed', 'shutdown', 'complete'].includes(x.Status.State)).length,
      startedAt: t.Status.State === 'running' ? (t.Status.Timestamp ?? null) : null,
      ...(port ? { port } : {}),
      ...(t.NodeID ? { node: nodes.get(t.NodeID) ?? t.NodeID } : {}),
      ...(t.Status.ContainerStatus?.ExitCode !== undefined
        ? { lastExitCode: t.Status.ContainerStatus.ExitCode }
        : {}),
      ...(t.Status.Err && status !== 'running' ? { error: t.Status.Err } : {}),
    };
  }

  async #nodeNames(): Promise<Map<string, string>> {
    return nodeNames(
      (await this.#o.docker.listNodes()) as { ID: string; Description?: { Hostname?: string } }[],
    );
  }

  async list(): Promise<RuntimeAppState[]> {
    const apps = new Set(
      (await this.#services()).map((s) => s.Spec.Labels?.[SWARM_LABEL.app]).filter((a): a is string => !!a),
    );
    const out: RuntimeAppState[] = [];
    for (const app of [...apps].sort()) {
      const s = await this.#state(app);
      if (s) out.push(s);
    }
    return out;
  }

  remove(app: string): Promise<void> {
    return this.#serial(app, async () => {
      this.#removed.set(app, Date.now());
      const services = await this.#services(app);
      for (const s of services) {
        try {
          await this.#o.docker.getService(s.ID).remove();
        } catch (err) {
          if (!/not found/i.test(message(err))) throw err;
        }
      }
      // Like the other runtimes, remove() returns once the app's containers are gone: on every node that is
      // up (a down node's tasks stay listed until it comes back and stops them).
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const ready = new Set(
          ((await this.#o.docker.listNodes()) as { ID: string; Status?: { State?: string } }[])
            .filter((n) => n.Status?.State === 'ready')
            .map((n) => n.ID),
        );
        const left = (await this.#tasks(services.map((s) => s.ID))).filter(
          (t) =>
            t.NodeID &&
            ready.has(t.NodeID) &&
            !['complete', 'shutdown', 'failed', 'rejected'].includes(t.Status.State),
        );
        if (left.length === 0) break;
        await sleep(500);
      }
      await this.#pruneSecrets(app, new Set());
      await this.#syncEdge();
    });
  }

  restart(app: string): Promise<RuntimeAppState> {
    return this.#serial(app, async () => {
      const services = await this.#services(app);
      if (services.length === 0)
        throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `app ${app} has no swarm services`);
      // New tasks of the same spec: a new digest generation (`~TIME`) tells them from the ones they replace.
      const generation = `~${Date.now().toString(36)}`;
      for (const s of services) {
        const tmpl = s.Spec.TaskTemplate as ServiceInfo['Spec']['TaskTemplate'] & {
          ContainerSpec?: { Labels?: Record<string, string> };
        };
        const digest = `${(s.Spec.Labels?.[SWARM_LABEL.digest] ?? '').split('~')[0]}${generation}`;
        await this.#update(s, {
          ...s.Spec,
          Labels: { ...s.Spec.Labels, [SWARM_LABEL.digest]: digest },
          TaskTemplate: {
            ...tmpl,
            ContainerSpec: {
              ...tmpl.ContainerSpec,
              Labels: { ...tmpl.ContainerSpec?.Labels, [SWARM_LABEL.digest]: digest },
            },
            ForceUpdate: (tmpl.ForceUpdate ?? 0) + 1,
          },
        });
      }
      const state = await this.#state(app);
      if (!state) throw new Error(`no services of ${app}`);
      return { ...state, rollout: { ...state.rollout, status: 'rolling' } };
    });
  }

  /** The last `tail` lines of the app's services (all tasks, every node). */
  async logs(app: string, q: LogQuery): Promise<LogLine[]> {
    const services = (await this.#services(app)).filter(
      (s) => !q.process || s.Spec.Labels?.[SWARM_LABEL.process] === q.process,
    );
    const out: LogLine[] = [];
    for (const s of services) {
      const buf = (await this.#o.docker.getService(s.ID).logs({
        stdout: true,
        stderr: true,
        timestamps: true,
        tail: q.tail ?? 100,
      } as never)) as unknown as Buffer;
      const frames = new LogFrames(
        { instance: s.Spec.Name, processType: s.Spec.Labels?.[SWARM_LABEL.process] ?? '' },
        (l) => out.push(l),
      );
      frames.push(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
      frames.end();
    }
    out.sort((a, b) => a.ts.localeCompare(b.ts));
    return q.tail ? out.slice(-q.tail) : out;
  }

  async *followLogs(app: string, q: LogQuery): AsyncIterable<LogLine> {
    for (const l of await this.logs(app, q)) yield l;
    const services = (await this.#services(app)).filter(
      (s) => !q.process || s.Spec.Labels?.[SWARM_LABEL.process] === q.process,
    );
    const queue: LogLine[] = [];
    let wake: (() => void) | undefined;
    const streams: NodeJS.ReadableStream[] = [];
    for (const s of services) {
      const stream = (await this.#o.docker.getService(s.ID).logs({
        stdout: true,
        stderr: true,
        timestamps: true,
        follow: true,
        since: Math.floor(Date.now() / 1000),
      } as never)) as unknown as NodeJS.ReadableStream;
      const frames = new LogFrames(
        { instance: s.Spec.Name, processType: s.Spec.Labels?.[SWARM_LABEL.process] ?? '' },
        (l) => {
          queue.push(l);
          wake?.();
        },
      );
      stream.on('data', (c: Buffer) => frames.push(c));
      streams.push(stream);
    }
    const stop = (): void => {
      for (const s of streams) (s as unknown as { destroy?: () => void }).destroy?.();
      wake?.();
    };
    q.signal?.addEventListener('abort', stop, { once: true });
    try {
      while (!q.signal?.aborted) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
    } finally {
      stop();
    }
  }

  /**
   * Keeps the edge in step with Swarm every `intervalMs` (default 2 s): tasks move when a node fails or is
   * drained, and Caddy must follow without a deploy.
   */
  start(intervalMs = 2000): void {
    if (this.#timer || !this.#o.edge) return;
    this.#timer = setInterval(() => void this.#syncEdge(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Loads the edge's routes now (also after every change this driver makes). */
  async syncEdge(): Promise<void> {
    await this.#o.edge?.sync();
  }

  async #syncEdge(): Promise<void> {
    try {
      await this.#o.edge?.sync();
    } catch (err) {
      this.#o.onWarning?.('loading the routes into Caddy failed', err);
    }
  }

  /**
   * The services of the swarm scheduled by swarm-cronjob's labels (by `code cron` or anyone) with the
   * runs Swarm still remembers (`GET /api/v1/cron`); minipaasd's scheduler starts them.
   */
  async cronJobs(): Promise<CronJobView[]> {
    const services = (await this.#o.docker.listServices({
      filters: JSON.stringify({ label: [LABELS.cronEnable] }),
    })) as unknown as ServiceInfo[];
    const out: CronJobView[] = [];
    for (const s of services) {
      const l = s.Spec.Labels ?? {};
      if (l[LABELS.cronEnable] !== 'true' && l[LABELS.cronEnable] !== '1') continue;
      out.push({
        service: s.Spec.Name,
        schedule: l[LABELS.cronSchedule] ?? '',
        skipRunning: l[LABELS.cronSkipRunning] === 'true' || l[LABELS.cronSkipRunning] === '1',
        replicas: Math.max(1, Number(l[LABELS.cronReplicas] ?? 1) || 1),
        runs: await cronRuns(this.#o.docker, s.Spec.Name),
      });
    }
    return out.sort((a, b) => a.service.localeCompare(b.service));
  }

  /** The swarm's nodes with role, availability and tasks (`GET /api/v1/nodes`). */
  nodes(): Promise<SwarmNodeInfo[]> {
    return listSwarmNodes(this.#o.docker);
  }

  /** Drains (`drain`) or activates (`active`) a node by id, id prefix or hostname. */
  setNodeAvailability(ref: string, availability: NodeAvailability): Promise<SwarmNodeInfo> {
    return setNodeAvailability(this.#o.docker, ref, availability);
  }

  /** Node addresses by node id (for callers that build their own views). */
  nodeAddresses(): Promise<Map<string, string>> {
    return nodeAddresses(this.#o.docker);
  }

  /** The image reference a service runs without Swarm's pinned digest. */
  static imageOf(s: { Spec: { TaskTemplate: { ContainerSpec?: { Image?: string } } } }): string {
    return imageName(s.Spec.TaskTemplate.ContainerSpec?.Image);
  }
}

export { serviceName };
