/**
 * The `docker` runtime driver: one container per instance through the Docker Engine API (dockerode), on
 * the `minipaas` bridge network, labelled `minipaas.app/release/process/instance` so a restarted control
 * plane adopts what runs and removes orphans. Web containers publish their port on 127.0.0.1 and the node
 * agent's router proxies to it (ADR 0009). Rollouts are health-gated start-first: new containers start,
 * pass their health check, the route switches atomically, replaced containers drain, then stop (SIGTERM,
 * SIGKILL after the grace period). Crashed containers are restarted by the platform with the same backoff
 * and crash-loop rules as processes; an OOM kill shows as `oom-killed`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { CrashTracker, DEFAULT_RESTART_POLICY, type RestartPolicy } from '@minipaas/agent';
import {
  type AppMetrics,
  dockerVolumeName,
  type InstanceMetrics,
  type InstanceStatus,
  type LogLine,
  type LogQuery,
  MinipaasError,
  type RuntimeAppState,
  type RuntimeDriver,
  type RuntimeHealth,
  type RuntimeInstance,
  type RuntimeSpec,
  type UsageSample,
} from '@minipaas/core';
import type Docker from 'dockerode';
import { CONTAINER_PORT, IMAGE_CMD, LABEL } from './constants.ts';
import { demuxLogs, followContainerLogs } from './container-logs.ts';
import type { RouteApi } from './route-client.ts';
import { specDigest } from './spec-digest.ts';

export { CONTAINER_PORT, IMAGE_CMD, LABEL };

/** Options of the {@link DockerDriver}. */
export interface DockerDriverOptions {
  /** Engine API client (dockerode), e.g. `new Docker()` for /var/run/docker.sock. */
  docker: Docker;
  /** Where the routes of web containers go (the node agent's router). */
  routes: RouteApi;
  /** JSON file that keeps the serving release of each app across control-plane restarts. */
  stateFile: string;
  /** Bridge network of every container (default `minipaas`). */
  network?: string;
  /** SIGTERM → SIGKILL grace when stopping a container (ms). */
  stopGraceMs: number;
  /** Time a new container has to pass its health check (ms). */
  startTimeoutMs: number;
  /** Longest wait for in-flight requests of replaced containers (ms, default 30 s). */
  drainTimeoutMs?: number;
  /** Interval of the supervision loop: crash restarts, route refresh, orphans (ms, default 1000). */
  monitorIntervalMs?: number;
  /**
   * Interval of CPU/memory samples of running containers while the supervision loop runs, kept as a short
   * history per container for `ps` and the metrics API (ms, default 5000; config
   * `resources.sampleIntervalMs`; 0: no sampling, metrics() takes one sample when asked).
   */
  sampleIntervalMs?: number;
  /** Backoff and crash-loop rules (the process runtime's defaults). */
  policy?: Partial<RestartPolicy>;
  /** Warnings of the supervision loop (a failed restart); default: none. */
  onWarning?: (msg: string, err?: unknown) => void;
}

/** An app's entry in the state file (shared by minipaasd and the build worker, which runs rollouts). */
interface Serving {
  /** Serving release ('' before the first successful rollout). */
  release: string;
  digest: string;
  /** A rollout in progress in process `pid`: its containers are not orphans. */
  rolling?: { release: string; pid: number };
}

interface Rollout {
  release: string;
  status: 'rolling' | 'ready' | 'failed';
  error?: string;
  logTail?: string[];
  updatedAt: string;
}

/** Crash bookkeeping of one container. */
interface Slot {
  tracker: CrashTracker;
  restarts: number;
  /** Restart due at (ms), while waiting for the backoff. */
  dueAt?: number;
  failed?: string;
  oom?: boolean;
  handledFinishedAt?: string;
  /** Usage samples of the container, oldest first (at most {@link MAX_SAMPLES}). */
  samples?: UsageSample[];
}

/** Samples kept per container: 10 minutes at the default 5 s interval, as the process runtime keeps. */
const MAX_SAMPLES = 120;

export class DockerDriver implements RuntimeDriver {
  readonly name = 'docker';
  readonly #o: Required<Omit<DockerDriverOptions, 'policy' | 'onWarning'>> & {
    policy: RestartPolicy;
    onWarning: (msg: string, err?: unknown) => void;
  };
  #serving = new Map<string, Serving>();
  #stateMtime = -1;
  readonly #rollouts = new Map<string, Rollout>();
  readonly #chains = new Map<string, Promise<unknown>>();
  readonly #slots = new Map<string, Slot>();
  readonly #routed = new Map<string, string>();
  #timer: NodeJS.Timeout | null = null;
  #sampler: NodeJS.Timeout | null = null;
  #ticking = false;
  #sampling = false;

  constructor(o: DockerDriverOptions) {
    this.#o = {
      network: 'minipaas',
      drainTimeoutMs: 30_000,
      monitorIntervalMs: 1000,
      sampleIntervalMs: 5000,
      ...o,
      policy: { ...DEFAULT_RESTART_POLICY, ...o.policy },
      onWarning: o.onWarning ?? (() => undefined),
    };
    this.#load();
  }

  /** The state file, read again when another process (the build worker) changed it. */
  #load(): Map<string, Serving> {
    let mtime = 0;
    try {
      mtime = statSync(this.#o.stateFile).mtimeMs;
    } catch {
      mtime = 0;
    }
    if (mtime !== this.#stateMtime) {
      this.#serving = readState(this.#o.stateFile);
      this.#stateMtime = mtime;
    }
    return this.#serving;
  }

  /** Whether a rollout of `app` runs (here or in another live process). */
  #rollingElsewhere(app: string): string | null {
    const r = this.#load().get(app)?.rolling;
    if (!r || r.pid === process.pid) return null;
    try {
      process.kill(r.pid, 0);
      return r.release;
    } catch {
      return null; // that process died mid-rollout: its containers are orphans now
    }
  }

  /** Starts the supervision loop (restarts, routes, orphans). */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tick(), this.#o.monitorIntervalMs);
    this.#timer.unref();
    if (this.#o.sampleIntervalMs > 0) {
      this.#sampler = setInterval(() => void this.sample(), this.#o.sampleIntervalMs);
      this.#sampler.unref();
    }
  }

  /** Stops the supervision loop; containers keep running. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#sampler) clearInterval(this.#sampler);
    this.#timer = null;
    this.#sampler = null;
  }

  /** One CPU/memory sample of every running platform container, appended to its history. */
  async sample(): Promise<void> {
    if (this.#sampling) return;
    this.#sampling = true;
    try {
      const running = (await this.#containers()).filter((c) => c.State === 'running');
      await Promise.all(
        running.map(async (c) => {
          const st = await this.#stats(c.Id);
          if (!st) return;
          const slot = this.#slot(c.Id);
          slot.samples = [...(slot.samples ?? []), st].slice(-MAX_SAMPLES);
        }),
      );
    } catch (err) {
      this.#o.onWarning('usage sampling failed', err);
    } finally {
      this.#sampling = false;
    }
  }

  async #stats(id: string): Promise<UsageSample | null> {
    const st = (await this.#o.docker
      .getContainer(id)
      .stats({ stream: false })
      .catch(() => null)) as DockerStats | null;
    // A container that stopped (or is restarting) answers with empty stats: no sample rather than a 0.
    if (!st?.memory_stats?.usage || st.read?.startsWith('0001-')) return null;
    return usage(st);
  }

  async health(): Promise<RuntimeHealth> {
    const v = await this.#engine(() => this.#o.docker.version());
    const all = await this.#containers();
    return {
      ok: true,
      version: `docker ${v.Version}`,
      apps: new Set(all.map((c) => c.Labels[LABEL.app])).size,
      instances: all.length,
    };
  }

  async apply(spec: RuntimeSpec): Promise<RuntimeAppState> {
    if (spec.artifact.kind !== 'image') {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `the docker runtime runs images, not release directories (${spec.artifact.path})`,
      );
    }
    const digest = specDigest(spec);
    const serving = this.#load().get(spec.name);
    const rolling = this.#rollouts.get(spec.name);
    const same =
      (serving?.digest === digest && rolling?.status !== 'rolling') ||
      (rolling?.status === 'rolling' && this.#pendingDigest.get(spec.name) === digest);
    if (!same) {
      this.#rollouts.set(spec.name, { release: spec.release, status: 'rolling', updatedAt: now() });
      this.#pendingDigest.set(spec.name, digest);
      void this.#serial(spec.name, () => this.#rollout(spec, digest));
    }
    return (await this.get(spec.name)) as RuntimeAppState;
  }

  readonly #pendingDigest = new Map<string, string>();

  async get(app: string): Promise<RuntimeAppState | null> {
    const cs = await this.#containers(app);
    const serving = this.#load().get(app);
    const elsewhere = this.#rollingElsewhere(app);
    const rollout =
      this.#rollouts.get(app) ??
      (elsewhere ? { release: elsewhere, status: 'rolling' as const, updatedAt: now() } : undefined);
    if (!serving && !rollout && cs.length === 0) return null;
    const details = await Promise.all(cs.map((c) => this.#inspect(c.Id)));
    return {
      name: app,
      ...(serving?.release ? { specDigest: serving.digest } : {}),
      release: serving?.release || null,
      rollout: rollout ?? {
        release: serving?.release ?? '',
        status: serving?.release ? 'ready' : 'idle',
        updatedAt: now(),
      },
      instances: details.filter((d) => d !== null).map((d) => this.#instance(d)),
    };
  }

  async list(): Promise<RuntimeAppState[]> {
    const names = new Set([
      ...this.#load().keys(),
      ...(await this.#containers()).map((c) => c.Labels[LABEL.app] as string),
    ]);
    const out: RuntimeAppState[] = [];
    for (const n of names) {
      const s = await this.get(n);
      if (s) out.push(s);
    }
    return out;
  }

  async remove(app: string): Promise<void> {
    await this.#serial(app, async () => {
      this.#load().delete(app);
      this.#rollouts.delete(app);
      await this.#saveState();
      await this.#o.routes.remove(app).catch((err) => this.#o.onWarning(`route of ${app}`, err));
      this.#routed.delete(app);
      await Promise.all((await this.#containers(app)).map((c) => this.#stopRemove(c.Id)));
      // The engine answers 409 while another removal of the same container is under way: wait until
      // they are gone, so whoever removes the app's volumes next does not find them in use.
      for (let i = 0; i < 50 && (await this.#containers(app)).length > 0; i++)
        await new Promise((r) => setTimeout(r, 200));
    });
  }

  async restart(app: string): Promise<RuntimeAppState> {
    const serving = this.#serving.get(app);
    if (!serving)
      throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app ${app} is not running on docker`);
    const spec = await this.#specOf(app, serving.release);
    // A restart is a rollout of the same release: new containers first, then the old ones go.
    this.#rollouts.set(app, { release: serving.release, status: 'rolling', updatedAt: now() });
    void this.#serial(app, () => this.#rollout(spec, serving.digest));
    return (await this.get(app)) as RuntimeAppState;
  }

  async logs(app: string, q: LogQuery): Promise<LogLine[]> {
    const cs = (await this.#containers(app)).filter(
      (c) => !q.process || c.Labels[LABEL.process] === q.process,
    );
    const lines: LogLine[] = [];
    for (const c of cs) {
      const buf = (await this.#o.docker.getContainer(c.Id).logs({
        stdout: true,
        stderr: true,
        timestamps: true,
        tail: q.tail ?? 100,
        follow: false,
      })) as Buffer;
      lines.push(...demuxLogs(buf, { ...meta(c), mask: await this.#maskOf(c) }));
    }
    lines.sort((a, b) => a.ts.localeCompare(b.ts));
    return q.tail !== undefined ? lines.slice(-q.tail) : lines;
  }

  followLogs(app: string, q: LogQuery): AsyncIterable<LogLine> {
    return followContainerLogs({
      docker: this.#o.docker,
      list: async () =>
        (await this.#containers(app)).filter((c) => !q.process || c.Labels[LABEL.process] === q.process),
      meta: async (c) => ({ ...meta(c), mask: await this.#maskOf(c) }),
      tail: q.tail ?? 0,
      ...(q.signal ? { signal: q.signal } : {}),
    });
  }

  /**
   * One CPU/memory sample per running container, from the engine's stats (memory usage without page
   * cache; CPU over the engine's own sampling window). No history is kept yet: one sample each.
   */
  async metrics(app: string): Promise<AppMetrics | null> {
    const state = await this.get(app);
    if (!state) return null;
    const cs = await this.#containers(app);
    const instances: InstanceMetrics[] = [];
    for (const i of state.instances) {
      const c = cs.find((x) => x.Labels[LABEL.instance] === i.id);
      // The sampler's history; without one yet (or in a process that does not sample), one sample now.
      let samples: UsageSample[] = c ? [...(this.#slots.get(c.Id)?.samples ?? [])] : [];
      if (c && c.State === 'running' && samples.length === 0) {
        const now = await this.#stats(c.Id);
        samples = now ? [now] : [];
      }
      instances.push({
        instance: i.id,
        processType: i.processType,
        status: i.status,
        ...(i.limits ? { limits: i.limits } : {}),
        samples,
      });
    }
    return { app, intervalMs: this.#o.sampleIntervalMs || this.#o.monitorIntervalMs, instances };
  }

  /**
   * One pass of supervision: restarts crashed containers of the serving release (backoff, crash loops
   * end in `failed`, restart policy from the label), refreshes routes, removes orphans.
   */
  async tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const all = await this.#containers();
      const byApp = new Map<string, Docker.ContainerInfo[]>();
      for (const c of all) {
        const a = c.Labels[LABEL.app] as string;
        byApp.set(a, [...(byApp.get(a) ?? []), c]);
      }
      for (const app of new Set([...byApp.keys(), ...this.#load().keys()])) {
        if (this.#rollouts.get(app)?.status === 'rolling' || this.#rollingElsewhere(app)) continue;
        await this.#superviseApp(app, byApp.get(app) ?? []).catch((err) =>
          this.#o.onWarning(`supervising ${app}`, err),
        );
      }
    } catch (err) {
      this.#o.onWarning('docker supervision pass failed', err);
    } finally {
      this.#ticking = false;
    }
  }

  async #superviseApp(app: string, cs: Docker.ContainerInfo[]): Promise<void> {
    const entry = this.#load().get(app);
    const serving = entry?.release ? entry : undefined;
    for (const c of cs) {
      if (!serving || c.Labels[LABEL.release] !== serving.release) {
        await this.#stopRemove(c.Id); // orphan: an app or release nobody serves
        continue;
      }
      if (c.State === 'running' || c.State === 'created' || c.State === 'restarting') continue;
      const d = await this.#inspect(c.Id);
      if (!d) continue;
      const slot = this.#slot(c.Id);
      if (slot.failed || slot.handledFinishedAt === d.State.FinishedAt) {
        if (slot.dueAt !== undefined && Date.now() >= slot.dueAt) {
          slot.dueAt = undefined;
          slot.restarts++;
          await this.#o.docker.getContainer(c.Id).start();
        }
        continue;
      }
      slot.handledFinishedAt = d.State.FinishedAt;
      slot.oom = d.State.OOMKilled;
      const policy = c.Labels[LABEL.restart] ?? 'always';
      const clean = d.State.ExitCode === 0 && !d.State.OOMKilled;
      if (policy === 'no' || (policy === 'on-failure' && clean)) continue;
      const uptime = Date.parse(d.State.FinishedAt) - Date.parse(d.State.StartedAt);
      const v = slot.tracker.record(Number.isFinite(uptime) ? uptime : 0);
      if (!v.restart) {
        slot.failed = `crash loop: exited ${v.fastCrashes} times within ${this.#o.policy.fastCrashMs} ms of starting (last exit code ${d.State.ExitCode})`;
        continue;
      }
      slot.dueAt = Date.now() + v.delayMs;
      if (v.delayMs === 0) {
        slot.dueAt = undefined;
        slot.restarts++;
        await this.#o.docker.getContainer(c.Id).start();
      }
    }
    if (serving) await this.#route(app, false);
  }

  /** Puts the published ports of the app's running web containers of the serving release on the router. */
  async #route(app: string, force: boolean): Promise<number[]> {
    const serving = this.#load().get(app);
    const cs = (await this.#containers(app)).filter(
      (c) =>
        c.Labels[LABEL.release] === serving?.release &&
        c.Labels[LABEL.process] === 'web' &&
        c.State === 'running',
    );
    const ports = cs
      .map(hostPort)
      .filter((p): p is number => p !== null)
      .sort((a, b) => a - b);
    const key = ports.join(',');
    if (force || this.#routed.get(app) !== key) {
      await this.#o.routes.put(app, ports);
      this.#routed.set(app, key);
    }
    return ports;
  }

  async #rollout(spec: RuntimeSpec, digest: string): Promise<void> {
    const app = spec.name;
    const started: string[] = [];
    const before = this.#load().get(app);
    this.#serving.set(app, {
      release: before?.release ?? '',
      digest: before?.digest ?? '',
      rolling: { release: spec.release, pid: process.pid },
    });
    await this.#saveState();
    try {
      await this.#ensureNetwork();
      await this.#ensureVolumes(spec);
      const old = await this.#containers(app);
      for (const [type, p] of Object.entries(spec.processes)) {
        for (let i = 0; i < p.instances; i++) started.push(await this.#createStart(spec, digest, type));
      }
      await Promise.all(started.map((id) => this.#waitHealthy(id, spec)));
      // Switch: the new release serves from now on.
      this.#load().set(app, {
        release: spec.release,
        digest,
        rolling: { release: spec.release, pid: process.pid },
      });
      await this.#saveState();
      const ports = await this.#route(app, true);
      if (spec.processes.web && spec.processes.web.instances > 0 && ports.length === 0)
        throw new Error('no web container published its port');
      // Drain the replaced containers, then stop them.
      const oldIds = old.filter((c) => !started.includes(c.Id));
      await this.#drain(
        app,
        oldIds.map(hostPort).filter((p): p is number => p !== null),
      );
      await Promise.all(oldIds.map((c) => this.#stopRemove(c.Id)));
      this.#rollouts.set(app, { release: spec.release, status: 'ready', updatedAt: now() });
    } catch (err) {
      const logTail: string[] = [];
      for (const id of started) {
        const info = (await this.#containers(app)).find((c) => c.Id === id);
        if (!info) continue;
        const buf = (await this.#o.docker
          .getContainer(id)
          .logs({ stdout: true, stderr: true, tail: 20, follow: false })
          .catch(() => Buffer.alloc(0))) as Buffer;
        logTail.push(...demuxLogs(buf, meta(info)).map((l) => l.line));
      }
      const serving = this.#load().get(app);
      if (serving?.release !== spec.release) await Promise.all(started.map((id) => this.#stopRemove(id)));
      this.#rollouts.set(app, {
        release: spec.release,
        status: 'failed',
        error: (err as Error).message,
        logTail: logTail.slice(-20),
        updatedAt: now(),
      });
    } finally {
      if (this.#pendingDigest.get(app) === digest) this.#pendingDigest.delete(app);
      const e = this.#load().get(app);
      if (e?.rolling?.pid === process.pid) {
        if (e.release) this.#serving.set(app, { release: e.release, digest: e.digest });
        else this.#serving.delete(app);
        await this.#saveState().catch((err) => this.#o.onWarning('saving the docker state', err));
      }
    }
  }

  async #createStart(spec: RuntimeSpec, digest: string, type: string): Promise<string> {
    if (spec.artifact.kind !== 'image') throw new Error('not an image');
    const instance = `${spec.name}-${type}-${randomBytes(3).toString('hex')}`;
    const web = type === 'web';
    const env: Record<string, string> = {
      ...spec.env,
      MINIPAAS_APP: spec.name,
      MINIPAAS_RELEASE: spec.release,
      MINIPAAS_PROCESS: type,
      MINIPAAS_INSTANCE: instance,
      ...(web ? { PORT: String(CONTAINER_PORT) } : {}),
    };
    // Names (never values) of the secret env vars: their values are masked in this container's logs.
    const secretValues = new Set(spec.maskValues ?? []);
    const masked = Object.keys(spec.env).filter((k) => secretValues.has(spec.env[k] as string));
    const r = spec.resources;
    const raw = spec.processes[type]?.command ?? '';
    const command = raw === IMAGE_CMD ? '' : raw;
    const c = await this.#o.docker.createContainer({
      name: `minipaas-${instance}`,
      Image: spec.artifact.ref,
      ...(command.trim() ? { Cmd: ['/bin/sh', '-c', command] } : {}),
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Labels: {
        [LABEL.app]: spec.name,
        [LABEL.release]: spec.release,
        [LABEL.process]: type,
        [LABEL.instance]: instance,
        [LABEL.digest]: digest,
        [LABEL.restart]: spec.restart ?? 'always',
        ...(masked.length > 0 ? { [LABEL.masked]: masked.join(',') } : {}),
      },
      ...(web ? { ExposedPorts: { [`${CONTAINER_PORT}/tcp`]: {} } } : {}),
      StopTimeout: Math.ceil(this.#o.stopGraceMs / 1000),
      HostConfig: {
        NetworkMode: this.#o.network,
        ...(web
          ? { PortBindings: { [`${CONTAINER_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] } }
          : {}),
        RestartPolicy: { Name: 'no' },
        ...(r?.memoryMb ? { Memory: r.memoryMb * 1024 * 1024, MemorySwap: r.memoryMb * 1024 * 1024 } : {}),
        ...(r?.cpuMillicores ? { NanoCpus: r.cpuMillicores * 1_000_000 } : {}),
        ...(r?.pids ? { PidsLimit: r.pids } : {}),
        Mounts: (spec.volumes ?? []).map((v) => ({
          Type: 'volume' as const,
          Source: dockerVolumeName(v),
          Target: v.target,
          ReadOnly: v.readOnly ?? false,
        })),
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      },
    });
    await c.start();
    return c.id;
  }

  /** Web: TCP (or HTTP when a path is set) on the container's own address; others: still running after a moment. */
  async #waitHealthy(id: string, spec: RuntimeSpec): Promise<void> {
    const deadline = Date.now() + this.#o.startTimeoutMs;
    let firstRunning = 0;
    while (Date.now() < deadline) {
      const d = await this.#inspect(id);
      if (!d) throw new Error('the container disappeared while starting');
      if (!d.State.Running) {
        throw new Error(
          d.State.OOMKilled
            ? 'the container was OOM-killed while starting'
            : `the container exited with code ${d.State.ExitCode} while starting`,
        );
      }
      const type = d.Config.Labels[LABEL.process];
      if (type !== 'web') {
        firstRunning ||= Date.now();
        if (Date.now() - firstRunning >= this.#o.policy.nonWebHealthyMs) return;
      } else {
        const ip = containerIp(d, this.#o.network);
        if (ip && (await probe(ip, CONTAINER_PORT, spec.healthcheck?.path, spec.healthcheck?.timeoutMs)))
          return;
      }
      await sleep(this.#o.policy.probeIntervalMs);
    }
    throw new Error(`not healthy within ${this.#o.startTimeoutMs} ms`);
  }

  async #drain(app: string, ports: number[]): Promise<void> {
    if (ports.length === 0) return;
    const deadline = Date.now() + this.#o.drainTimeoutMs;
    while (Date.now() < deadline) {
      const s = await this.#o.routes.get(app);
      if (ports.every((p) => !s.inFlight[String(p)])) return;
      await sleep(50);
    }
  }

  async #stopRemove(id: string): Promise<void> {
    const c = this.#o.docker.getContainer(id);
    try {
      await c.stop({ t: Math.ceil(this.#o.stopGraceMs / 1000) });
    } catch (err) {
      if (!isStatus(err, 304) && !isStatus(err, 404)) throw err;
    }
    try {
      await c.remove({ force: true });
    } catch (err) {
      if (!isStatus(err, 404) && !isStatus(err, 409)) throw err;
    }
    this.#slots.delete(id);
  }

  async #ensureNetwork(): Promise<void> {
    const name = this.#o.network;
    const nets = await this.#o.docker.listNetworks({ filters: { name: [name] } });
    if (nets.some((n) => n.Name === name)) return;
    try {
      await this.#o.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        Labels: { 'minipaas.network': '1' },
      });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
  }

  /** Named volumes `minipaas-vol-{project}-{id}` bound to the volume's host directory (ADR 0008). */
  async #ensureVolumes(spec: RuntimeSpec): Promise<void> {
    for (const v of spec.volumes ?? []) {
      const name = dockerVolumeName(v);
      const exists = await this.#o.docker
        .getVolume(name)
        .inspect()
        .then(() => true)
        .catch((err) => {
          if (isStatus(err, 404)) return false;
          throw err;
        });
      if (exists) continue;
      await mkdir(v.hostPath, { recursive: true });
      await this.#o.docker.createVolume({
        Name: name,
        Driver: 'local',
        DriverOpts: { type: 'none', o: 'bind', device: v.hostPath },
        Labels: { 'minipaas.volume': v.id, 'minipaas.project': v.project },
      });
    }
  }

  /** Rebuilds a spec from the serving containers (restart without the control plane's spec). */
  async #specOf(app: string, release: string): Promise<RuntimeSpec> {
    const cs = (await this.#containers(app)).filter((c) => c.Labels[LABEL.release] === release);
    const first = cs[0];
    if (!first)
      throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app ${app} has no containers to restart`);
    const d = await this.#inspect(first.Id);
    if (!d) throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app ${app} has no containers to restart`);
    const processes: RuntimeSpec['processes'] = {};
    for (const c of cs) {
      const t = c.Labels[LABEL.process] as string;
      const di = await this.#inspect(c.Id);
      const cmd = di?.Config.Cmd;
      processes[t] = {
        command: cmd && cmd[0] === '/bin/sh' && cmd[1] === '-c' ? (cmd[2] ?? IMAGE_CMD) : IMAGE_CMD,
        instances: (processes[t]?.instances ?? 0) + 1,
      };
    }
    const skip = /^(PORT|MINIPAAS_(APP|RELEASE|PROCESS|INSTANCE))=/;
    const env = Object.fromEntries(
      (d.Config.Env ?? [])
        .filter((e) => !skip.test(e))
        .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
    );
    const hc = d.HostConfig;
    const mask = await this.#maskOf(first);
    return {
      name: app,
      release,
      artifact: { kind: 'image', ref: d.Config.Image },
      env,
      ...(mask.length > 0 ? { maskValues: mask } : {}),
      processes,
      resources: {
        ...(hc.Memory ? { memoryMb: Math.round(hc.Memory / 1024 / 1024) } : {}),
        ...(hc.NanoCpus ? { cpuMillicores: Math.round(hc.NanoCpus / 1_000_000) } : {}),
      },
    };
  }

  #instance(d: Docker.ContainerInspectInfo): RuntimeInstance {
    const slot = this.#slots.get(d.Id);
    const l = d.Config.Labels;
    let status: InstanceStatus;
    if (slot?.failed) status = 'failed';
    else if (d.State.Running) status = 'running';
    else if (d.State.Status === 'created') status = 'starting';
    else if (slot?.dueAt !== undefined) status = d.State.OOMKilled ? 'oom-killed' : 'restarting';
    else if (d.State.OOMKilled) status = 'oom-killed';
    else if (d.State.Status === 'removing') status = 'stopping';
    else status = d.State.ExitCode === 0 ? 'stopped' : 'crashed';
    const hc = d.HostConfig;
    const error = slot?.failed
      ? slot.failed
      : status === 'oom-killed'
        ? `killed by the OOM killer at its memory limit (${Math.round((hc.Memory ?? 0) / 1024 / 1024)} MiB)`
        : status === 'crashed'
          ? `exited with code ${d.State.ExitCode}`
          : undefined;
    return {
      id: l[LABEL.instance] ?? d.Name.replace(/^\//, ''),
      processType: l[LABEL.process] ?? 'web',
      release: l[LABEL.release] ?? '',
      status,
      restarts: slot?.restarts ?? 0,
      startedAt: d.State.StartedAt && !d.State.StartedAt.startsWith('0001') ? d.State.StartedAt : null,
      pid: null,
      port: publishedPort(d),
      lastExitCode: d.State.Running ? null : d.State.ExitCode,
      ...(error ? { error } : {}),
      ...(d.State.Running && slot?.samples?.length ? { usage: slot.samples[slot.samples.length - 1] } : {}),
      limits: {
        mode: 'docker',
        ...(hc.Memory ? { memoryMb: Math.round(hc.Memory / 1024 / 1024) } : {}),
        ...(hc.NanoCpus ? { cpuMillicores: Math.round(hc.NanoCpus / 1_000_000) } : {}),
      },
    };
  }

  #slot(id: string): Slot {
    let s = this.#slots.get(id);
    if (!s) {
      s = { tracker: new CrashTracker(this.#o.policy), restarts: 0 };
      this.#slots.set(id, s);
    }
    return s;
  }

  async #containers(app?: string): Promise<Docker.ContainerInfo[]> {
    return this.#engine(() =>
      this.#o.docker.listContainers({
        all: true,
        filters: { label: [app ? `${LABEL.app}=${app}` : LABEL.app] },
      }),
    );
  }

  /** The values a container's log lines mask: its env values of the names in its masked label. */
  async #maskOf(c: Docker.ContainerInfo): Promise<string[]> {
    const names = new Set((c.Labels[LABEL.masked] ?? '').split(',').filter(Boolean));
    if (names.size === 0) return [];
    const d = await this.#inspect(c.Id);
    const values: string[] = [];
    for (const kv of d?.Config.Env ?? []) {
      const eq = kv.indexOf('=');
      if (eq > 0 && names.has(kv.slice(0, eq)) && kv.length > eq + 1) values.push(kv.slice(eq + 1));
    }
    return values;
  }

  async #inspect(id: string): Promise<Docker.ContainerInspectInfo | null> {
    try {
      return await this.#o.docker.getContainer(id).inspect();
    } catch (err) {
      if (isStatus(err, 404)) return null;
      throw err;
    }
  }

  async #engine<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES')
        throw new MinipaasError(
          'MINIPAAS_ERR_DOCKER_UNAVAILABLE',
          `the Docker engine is not reachable (${code})`,
        );
      throw err;
    }
  }

  async #saveState(): Promise<void> {
    const f = this.#o.stateFile;
    await mkdir(dirname(f), { recursive: true });
    const tmp = `${f}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(Object.fromEntries(this.#serving)), { mode: 0o600 });
    await rename(tmp, f);
    this.#stateMtime = statSync(f).mtimeMs;
  }

  #serial<T>(app: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(app) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.#chains.set(app, settled);
    void settled.then(() => {
      if (this.#chains.get(app) === settled) this.#chains.delete(app);
    });
    return next;
  }
}

function readState(file: string): Map<string, Serving> {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Serving>;
    return new Map(Object.entries(raw).filter(([k]) => k !== '__proto__'));
  } catch {
    return new Map();
  }
}

function meta(c: Docker.ContainerInfo): { instance: string; processType: string } {
  return {
    instance: c.Labels[LABEL.instance] ?? c.Id.slice(0, 12),
    processType: c.Labels[LABEL.process] ?? 'web',
  };
}

function hostPort(c: Docker.ContainerInfo): number | null {
  const p = c.Ports.find((x) => x.PrivatePort === CONTAINER_PORT && x.PublicPort);
  return p ? p.PublicPort : null;
}

function publishedPort(d: Docker.ContainerInspectInfo): number | null {
  const b = d.NetworkSettings.Ports?.[`${CONTAINER_PORT}/tcp`]?.[0];
  return b?.HostPort ? Number(b.HostPort) : null;
}

function containerIp(d: Docker.ContainerInspectInfo, network: string): string | null {
  return d.NetworkSettings.Networks?.[network]?.IPAddress || null;
}

function probe(host: string, port: number, path: string | undefined, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.setTimeout(timeoutMs, () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
    s.once('connect', () => {
      if (!path) {
        s.destroy();
        resolve(true);
        return;
      }
      s.write(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: minipaas/health\r\nConnection: close\r\n\r\n`,
      );
      let head = '';
      s.on('data', (b: Buffer) => {
        head += b.toString('latin1');
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
        if (m) {
          s.destroy();
          resolve(Number(m[1]) < 500);
        }
      });
      s.once('end', () => resolve(false));
    });
  });
}

function isStatus(err: unknown, code: number): boolean {
  return (err as { statusCode?: number }).statusCode === code;
}

function now(): string {
  return new Date().toISOString();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The fields of a one-shot `GET /containers/{id}/stats` the driver reads. */
interface DockerStats {
  read: string;
  cpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number };
  memory_stats: { usage?: number; stats?: Record<string, number> };
}

function usage(st: DockerStats): UsageSample {
  const cpuDelta = st.cpu_stats.cpu_usage.total_usage - st.precpu_stats.cpu_usage.total_usage;
  const sysDelta = (st.cpu_stats.system_cpu_usage ?? 0) - (st.precpu_stats.system_cpu_usage ?? 0);
  const cpus = st.cpu_stats.online_cpus ?? 1;
  const cpuMillicores = sysDelta > 0 && cpuDelta > 0 ? Math.round((cpuDelta / sysDelta) * cpus * 1000) : 0;
  const cache = st.memory_stats.stats?.total_inactive_file ?? st.memory_stats.stats?.inactive_file ?? 0;
  const memoryBytes = Math.max(0, (st.memory_stats.usage ?? 0) - cache);
  const ts = Number.isNaN(Date.parse(st.read)) ? new Date().toISOString() : new Date(st.read).toISOString();
  return { ts, cpuMillicores, memoryBytes };
}
