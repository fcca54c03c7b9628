import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AgentAppMetrics, AgentAppState, AppSpec } from '@minipaas/core';
import { MinipaasError } from '@minipaas/core';
import { appDirs, prepareAppDirs, prepareReleaseDir, type RunAs } from '@minipaas/runtime-process/run-as';
import type { Logger } from 'pino';
import { AppRuntime, stableStringify } from './app-runtime.ts';
import type { Cgroups } from './cgroup.ts';
import { Instance } from './instance.ts';
import type { LogStore } from './log-store.ts';
import type { PortAllocator } from './port-allocator.ts';
import { createResourceLimiter, type ResourceLimiter } from './resource-limits.ts';
import type { RestartPolicy } from './restart-policy.ts';
import { linkMountPaths, prepareVolumes, volumeEnv } from './volumes.ts';

/** Options of the supervisor. */
export interface SupervisorOptions {
  home: string;
  logger: Logger;
  logs: LogStore;
  ports: PortAllocator;
  /**
   * Fallback user of apps whose spec has no `user` (null: no switch at all, apps run as the agent's user:
   * the agent is not root, or `apps.user=root`). Non-null means the agent is root: apps with a `user` run as it.
   */
  runAs: RunAs | null;
  policy: RestartPolicy;
  stopGraceMs: number;
  drainTimeoutMs: number;
  /** JSON file holding the desired specs and the pids of live processes; null disables persistence. */
  stateFile: string | null;
  /** Puts every instance in its own cgroup (default: none, process groups only). */
  cgroups?: Cgroups;
  /** Applies the apps' memory/CPU limits (issue 9); absent: limits are reported unsupported. */
  limiter?: ResourceLimiter;
  /** Interval between usage samples, for the metrics history. */
  sampleIntervalMs?: number;
  /**
   * Seals the specs' env vars (secrets among them) in the state file (the platform's master key,
   * docs/security.md); absent: they are written as they are.
   */
  sealer?: StateSealer;
}

/** Seals text for the state file, bound to a context (the app's name). */
export interface StateSealer {
  seal(text: string, context: string): string;
  open(sealed: string, context: string): string;
}

/** A spec as the state file holds it: env and masked values sealed into `sealedEnv`. */
type StoredSpec = AppSpec & { sealedEnv?: string };

interface PersistedState {
  version: 1;
  /** Per app: the desired spec and the one that served (they differ after a failed rollout). */
  apps: Array<{
    spec: StoredSpec;
    serving: StoredSpec | null;
    /** One-offs per type that finished for `spec` (not run again by a restarted agent). */
    finished?: Record<string, number>;
  }>;
  /** Process groups of live instances, with their kernel start time to survive pid reuse. */
  processes: Array<{ pid: number; start: string | null }>;
}

/** Kernel start time of a process (field 22 of /proc/<pid>/stat), or null. */
function procStart(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** Environment every instance starts from (never the agent's whole environment). */
export function baseEnv(runAs: RunAs | null): Record<string, string> {
  const nodeBin = dirname(process.execPath);
  const path = [nodeBin, ...(process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')]
    .filter((p, i, a) => p && a.indexOf(p) === i)
    .join(':');
  const env: Record<string, string> = { PATH: path, LANG: process.env.LANG || 'C.UTF-8' };
  for (const k of ['LC_ALL', 'TZ']) {
    const v = process.env[k];
    if (v) env[k] = v;
  }
  if (runAs) {
    env.USER = runAs.user;
    env.LOGNAME = runAs.user;
  }
  return env;
}

/** Owns every app runtime of this node. */
export class Supervisor {
  private readonly opts: SupervisorOptions;
  private readonly apps = new Map<string, AppRuntime>();
  private persistScheduled = false;
  private closed = false;
  /** The text last written to the state file: an unchanged state is not written again. */
  private lastWritten: string | null = null;
  /** Kernel start time per live pid, read from /proc once per process (not once per write). */
  private readonly startTimes = new Map<number, string | null>();
  /** Watchers of each app's state (GET /v1/apps/:name/watch). */
  private readonly watchers = new Map<string, Set<(state: AgentAppState | null) => void>>();
  /** Apps whose watchers get the new state at the next turn of the event loop (coalesced). */
  private readonly notifyPending = new Set<string>();

  constructor(opts: SupervisorOptions) {
    this.opts = opts;
  }

  get appCount(): number {
    return this.apps.size;
  }

  get instanceCount(): number {
    let n = 0;
    for (const a of this.apps.values()) n += a.allInstances().filter((i) => i.live).length;
    return n;
  }

  /** Kills processes left by a previous agent that died without stopping them, then re-applies saved specs. */
  async restore(): Promise<number> {
    const file = this.opts.stateFile;
    if (!file || !existsSync(file)) return 0;
    let state: PersistedState;
    try {
      state = JSON.parse(readFileSync(file, 'utf8')) as PersistedState;
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'ignoring unreadable agent state');
      return 0;
    }
    for (const p of state.processes ?? []) {
      if (!p.start || procStart(p.pid) !== p.start) continue;
      this.opts.logger.warn({ pid: p.pid }, 'killing orphaned app process of a previous agent');
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const entry of state.apps ?? []) {
      let spec: AppSpec;
      let serving: AppSpec | null;
      try {
        spec = this.openSpec(entry.spec);
        serving = entry.serving ? this.openSpec(entry.serving) : null;
      } catch (err) {
        this.opts.logger.error(
          { app: entry.spec?.name, err: (err as Error).message },
          'cannot open the sealed env of a saved spec; the reconciler pushes it again',
        );
        continue;
      }
      const { finished } = entry;
      if (!spec?.name) continue;
      if (serving && stableStringify(serving) !== stableStringify(spec)) {
        // Bring back what served first, then retry the desired spec (old keeps serving if it fails again).
        this.apply(serving);
        const app = this.apps.get(spec.name);
        void app?.settled().then(() => {
          if (!this.closed && this.apps.get(spec.name) === app) this.apply(spec);
        });
      } else {
        this.apply(spec, finished && typeof finished === 'object' ? finished : {});
      }
    }
    return state.apps?.length ?? 0;
  }

  private assertOpen(): void {
    if (this.closed)
      throw new MinipaasError('MINIPAAS_ERR_AGENT_UNAVAILABLE', 'the node agent is shutting down');
  }

  /** `finished`: one-offs that already ran for `spec` (when restoring a saved state). */
  apply(spec: AppSpec, finished: Record<string, number> = {}): AgentAppState {
    this.assertOpen();
    let app = this.apps.get(spec.name);
    if (!app) {
      app = new AppRuntime(spec, this.depsFor(spec.name));
      this.apps.set(spec.name, app);
      app.apply(spec, true, finished);
      this.persist();
    } else if (app.apply(spec) !== 'noop') {
      this.persist();
      this.notify(spec.name);
    }
    // An identical spec changes nothing: no state write, no /proc read (the idle resync path).
    return app.state();
  }

  /**
   * Calls `listener` with the app's state after each change (coalesced within one turn of the event loop;
   * the same state may be reported twice), and with null once the app is removed. Returns the function
   * that unsubscribes, or null when the app is unknown.
   */
  watch(name: string, listener: (state: AgentAppState | null) => void): (() => void) | null {
    if (!this.apps.has(name)) return null;
    let set = this.watchers.get(name);
    if (!set) {
      set = new Set();
      this.watchers.set(name, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.watchers.get(name) === set) this.watchers.delete(name);
    };
  }

  /** Number of open watches of an app. */
  watcherCount(name: string): number {
    return this.watchers.get(name)?.size ?? 0;
  }

  /** Schedules a state report to the app's watchers (no work without watchers). */
  private notify(name: string): void {
    if (!this.watchers.has(name) || this.notifyPending.has(name)) return;
    this.notifyPending.add(name);
    setImmediate(() => {
      this.notifyPending.delete(name);
      const state = this.apps.get(name)?.state() ?? null;
      for (const w of [...(this.watchers.get(name) ?? [])]) w(state);
    });
  }

  get(name: string): AgentAppState | null {
    return this.apps.get(name)?.state() ?? null;
  }

  list(): AgentAppState[] {
    return [...this.apps.values()].map((a) => a.state()).sort((a, b) => a.name.localeCompare(b.name));
  }

  has(name: string): boolean {
    return this.apps.has(name);
  }

  restart(name: string): AgentAppState {
    this.assertOpen();
    const app = this.apps.get(name);
    if (!app)
      throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app ${name} is not running on this agent`);
    app.restart();
    this.notify(name);
    return app.state();
  }

  async remove(name: string): Promise<number> {
    const app = this.apps.get(name);
    if (!app)
      throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app ${name} is not running on this agent`);
    this.apps.delete(name);
    this.persist();
    this.notify(name);
    return app.destroy();
  }

  /** The limiter of every instance (unsupported when none was given). */
  private get limiter(): ResourceLimiter {
    this.#limiter ??= this.opts.limiter ?? createResourceLimiter({ root: 'minipaas', mode: 'none' });
    return this.#limiter;
  }
  #limiter: ResourceLimiter | undefined;

  /** Takes one CPU/memory sample of every instance with a process (called every sample interval). */
  sampleAll(): void {
    for (const app of this.apps.values()) for (const i of app.allInstances()) i.sample();
  }

  /** The recent samples of an app's instances. */
  metrics(name: string): AgentAppMetrics {
    const app = this.apps.get(name);
    if (!app)
      throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app ${name} is not running on this agent`);
    return {
      app: name,
      intervalMs: this.opts.sampleIntervalMs ?? 5000,
      instances: app.state().instances.map((info) => {
        const inst = app.allInstances().find((i) => i.id === info.id);
        return {
          instance: info.id,
          processType: info.processType,
          status: info.status,
          ...(info.limits ? { limits: info.limits } : {}),
          samples: inst ? [...inst.samples] : [],
        };
      }),
    };
  }

  /** Instances the router may use for an app, or null when the app is unknown. */
  routeTargets(name: string): Instance[] | null {
    const app = this.apps.get(name);
    return app ? app.routeTargets() : null;
  }

  /** Stops every instance of every app (the specs stay persisted so a restarted agent brings them back). */
  async stopAll(): Promise<void> {
    this.writeState();
    this.closed = true;
    await Promise.all([...this.apps.values()].map((a) => a.destroy()));
    this.writeState(true);
  }

  private depsFor(name: string) {
    const logger = this.opts.logger.child({ app: name });
    return {
      logger,
      createInstance: (spec: AppSpec, processType: string) => this.createInstance(spec, processType, logger),
      prepare: (spec: AppSpec) => this.prepare(spec),
      startTimeoutMs: this.opts.policy.startTimeoutMs,
      stopGraceMs: this.opts.stopGraceMs,
      drainTimeoutMs: this.opts.drainTimeoutMs,
      onChange: () => {
        this.persist();
        this.notify(name);
      },
    };
  }

  private async prepare(spec: AppSpec): Promise<void> {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(spec.dir);
    } catch {
      throw new Error(`release directory ${spec.dir} does not exist`);
    }
    if (!st.isDirectory()) throw new Error(`release directory ${spec.dir} is not a directory`);
    const who = this.runAsFor(spec);
    if (who) await prepareReleaseDir(this.opts.home, spec.dir, who);
    await prepareAppDirs(this.opts.home, spec.name, who);
    await prepareVolumes(this.opts.home, spec.volumes ?? [], who);
    for (const note of await linkMountPaths(this.opts.home, spec.dir, spec.volumes ?? []))
      this.opts.logger.warn({ app: spec.name }, note);
  }

  /** The identity an app's instances run as: its own user, else the fallback; none without a switch. */
  private runAsFor(spec: AppSpec): RunAs | null {
    if (!this.opts.runAs) return null;
    if (!spec.user) return this.opts.runAs;
    return { user: spec.user.name, uid: spec.user.uid, gid: spec.user.gid };
  }

  private createInstance(spec: AppSpec, processType: string, appLogger: Logger): Instance {
    const id = `${spec.name}-${processType}-${randomBytes(3).toString('hex')}`.toLowerCase();
    const proc = spec.processes[processType];
    const who = this.runAsFor(spec);
    const dirs = appDirs(this.opts.home, spec.name);
    const env: Record<string, string> = {
      ...baseEnv(who),
      HOME: dirs.data,
      TMPDIR: dirs.tmp,
      MINIPAAS_DATA_DIR: dirs.data,
      ...spec.env,
      MINIPAAS_APP: spec.name,
      MINIPAAS_PROCESS_TYPE: processType,
      MINIPAAS_RELEASE: spec.release,
      MINIPAAS_INSTANCE: id,
      ...volumeEnv(spec.volumes ?? []),
    };
    const inst = new Instance({
      id,
      app: spec.name,
      processType,
      release: spec.release,
      command: proc?.command ?? 'false',
      dir: spec.dir,
      env,
      web: processType === 'web',
      ...(spec.healthcheck ? { healthcheck: spec.healthcheck } : {}),
      runAs: who,
      ports: this.opts.ports,
      log: this.opts.logs.open(spec.name, id, processType, spec.maskValues ?? []),
      policy: this.opts.policy,
      logger: appLogger.child({ instance: id }),
      onProcess: (inst) => {
        // A new process (or an exit): its pid's start time is read again at the next write.
        if (inst.pid) this.startTimes.delete(inst.pid);
        this.persist();
      },
      ...(this.opts.cgroups ? { cgroups: this.opts.cgroups } : {}),
      ...(spec.resources ? { limits: spec.resources, limiter: this.limiter } : {}),
      ...(spec.restart ? { restart: spec.restart } : {}),
    });
    inst.on('status', () => this.notify(spec.name));
    return inst;
  }

  /** Schedules a write of the state file (coalesced). */
  persist(): void {
    if (!this.opts.stateFile || this.persistScheduled || this.closed) return;
    this.persistScheduled = true;
    setImmediate(() => {
      this.persistScheduled = false;
      if (!this.closed) this.writeState();
    });
  }

  /** Sealed env per spec object: the same spec seals to the same text, so an unchanged state is not rewritten. */
  private readonly sealedEnvs = new WeakMap<AppSpec, string>();

  private sealSpec(spec: AppSpec): StoredSpec {
    const sealer = this.opts.sealer;
    if (!sealer) return spec;
    let sealedEnv = this.sealedEnvs.get(spec);
    if (sealedEnv === undefined) {
      sealedEnv = sealer.seal(
        JSON.stringify({ env: spec.env, maskValues: spec.maskValues }),
        `agent-state:${spec.name}`,
      );
      this.sealedEnvs.set(spec, sealedEnv);
    }
    const { maskValues: _mask, ...rest } = spec;
    return { ...rest, env: {}, sealedEnv };
  }

  private openSpec(stored: StoredSpec): AppSpec {
    const { sealedEnv, ...rest } = stored;
    if (sealedEnv === undefined) return rest;
    if (!this.opts.sealer)
      throw new Error('the state file has sealed env vars but the agent has no master key');
    const { env, maskValues } = JSON.parse(
      this.opts.sealer.open(sealedEnv, `agent-state:${stored.name}`),
    ) as {
      env: Record<string, string>;
      maskValues?: string[];
    };
    return { ...rest, env, ...(maskValues ? { maskValues } : {}) };
  }

  private writeState(noProcesses = false): void {
    const file = this.opts.stateFile;
    if (!file) return;
    const processes: PersistedState['processes'] = [];
    const live = new Set<number>();
    if (!noProcesses) {
      for (const a of this.apps.values()) {
        for (const i of a.allInstances()) {
          if (!i.pid) continue;
          live.add(i.pid);
          let start = this.startTimes.get(i.pid);
          if (start === undefined) {
            start = procStart(i.pid);
            this.startTimes.set(i.pid, start);
          }
          processes.push({ pid: i.pid, start });
        }
      }
    }
    for (const pid of this.startTimes.keys()) if (!live.has(pid)) this.startTimes.delete(pid);
    const state: PersistedState = {
      version: 1,
      apps: [...this.apps.values()].map((a) => {
        const finished = a.finishedOneOffs();
        return {
          spec: this.sealSpec(a.spec),
          serving: a.servingSpec ? this.sealSpec(a.servingSpec) : null,
          ...(Object.keys(finished).length > 0 ? { finished } : {}),
        };
      }),
      processes,
    };
    const text = `${JSON.stringify(state, null, 2)}\n`;
    if (text === this.lastWritten) return;
    try {
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, text, { mode: 0o600 });
      renameSync(tmp, file);
      this.lastWritten = text;
    } catch (err) {
      this.opts.logger.error({ err: (err as Error).message }, 'cannot write agent state');
    }
  }
}
