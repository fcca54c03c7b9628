import {
  type AgentAppState,
  type AppSpec,
  appSpecDigest,
  type RolloutStatus,
  stableStringify,
} from '@minipaas/core';
import type { Logger } from 'pino';
import type { Instance } from './instance.ts';

export { stableStringify };

/** What an app runtime needs from the supervisor (injected, so it stays testable). */
export interface AppRuntimeDeps {
  logger: Logger;
  /** Creates (does not start) an instance of `processType` for `spec`. */
  createInstance(spec: AppSpec, processType: string): Instance;
  /** Makes `spec.dir` usable by the app user; throws a readable error otherwise. */
  prepare(spec: AppSpec): Promise<void>;
  /** Max time a rollout waits for new instances to become healthy. */
  startTimeoutMs: number;
  /** SIGTERM → SIGKILL grace when stopping. */
  stopGraceMs: number;
  /** Max time to wait for in-flight requests of old instances. */
  drainTimeoutMs: number;
  /** Called whenever the desired or observed state changed in a way worth persisting. */
  onChange(): void;
}

interface Generation {
  spec: AppSpec;
  instances: Instance[];
}

/** True when going from `a` to `b` needs new processes (release, dir, env or a command changed). */
export function needsRollout(a: AppSpec, b: AppSpec): boolean {
  if (a.release !== b.release || a.dir !== b.dir) return true;
  if (stableStringify(a.env) !== stableStringify(b.env)) return true;
  // Volumes, limits and the restart policy are fixed when a process starts.
  const fixed = (s: AppSpec) => stableStringify([s.volumes ?? [], s.resources ?? {}, s.restart ?? 'always']);
  if (fixed(a) !== fixed(b)) return true;
  for (const [type, p] of Object.entries(b.processes)) {
    const old = a.processes[type];
    if (old && old.command !== p.command) return true;
  }
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One app on this node: the serving generation of instances, an optional rollout in progress,
 * instances being drained, and instances of a failed first rollout (kept for display).
 */
export class AppRuntime {
  readonly name: string;
  #spec: AppSpec;
  /** {@link stableStringify} and {@link appSpecDigest} of `#spec`, computed once per change. */
  #specText = '';
  #specDigest = '';
  private readonly deps: AppRuntimeDeps;
  private current: Generation | null = null;
  private pending: Generation | null = null;
  private readonly stopping = new Set<Instance>();
  private leftovers: Instance[] = [];
  private rollout: AgentAppState['rollout'];
  private destroyed = false;
  /** {@link finishedOneOffs} when destroyed (the agent stopping saves it for its successor). */
  #finishedAtDestroy: Record<string, number> = {};

  constructor(spec: AppSpec, deps: AppRuntimeDeps) {
    this.name = spec.name;
    this.#spec = spec;
    this.#specText = stableStringify(spec);
    this.#specDigest = appSpecDigest(spec);
    this.deps = deps;
    this.rollout = { release: spec.release, status: 'idle', updatedAt: new Date().toISOString() };
  }

  /** The latest desired spec. */
  get spec(): AppSpec {
    return this.#spec;
  }

  set spec(spec: AppSpec) {
    if (spec === this.#spec) return;
    this.#spec = spec;
    this.#specText = stableStringify(spec);
    this.#specDigest = appSpecDigest(spec);
  }

  /**
   * Applies a desired spec: no-op when identical (nothing changes, nothing is reported to `onChange`),
   * scale when only counts changed, rollout otherwise.
   */
  apply(spec: AppSpec, initial = false, finished: Record<string, number> = {}): 'noop' | 'scale' | 'rollout' {
    if (!initial && stableStringify(spec) === this.#specText) return 'noop';
    this.spec = spec;
    if (this.current && !needsRollout(this.current.spec, spec)) {
      this.abortPending();
      this.scale(spec);
      this.setRollout(spec.release, 'ready');
      this.deps.onChange();
      return 'scale';
    }
    this.startRollout(spec, finished);
    return 'rollout';
  }

  /**
   * Finished one-offs per process type of the generation that serves the desired spec (persisted, so a
   * restarted agent does not run them again). Empty while a rollout to another spec is pending.
   */
  finishedOneOffs(): Record<string, number> {
    if (this.destroyed) return this.#finishedAtDestroy;
    const out: Record<string, number> = {};
    if (!this.current || stableStringify(this.current.spec) !== this.#specText) return out;
    for (const i of this.current.instances)
      if (i.finished) out[i.processType] = (out[i.processType] ?? 0) + 1;
    return out;
  }

  /**
   * Rolling restart of what serves (same release). When nothing serves yet (first rollout failed),
   * the desired spec is tried again. The restarted spec becomes the desired one.
   */
  restart(): void {
    if (this.current) this.spec = this.current.spec;
    this.startRollout(this.spec);
  }

  /** The spec of the generation that serves, or null. */
  get servingSpec(): AppSpec | null {
    return this.current?.spec ?? null;
  }

  /** Resolves when no rollout is in progress. */
  async settled(): Promise<void> {
    while (this.pending && !this.destroyed) await sleep(50);
  }

  /** Web instances the router may send traffic to. */
  routeTargets(): Instance[] {
    if (!this.current) return [];
    return this.current.instances.filter((i) => i.processType === 'web' && i.status === 'running');
  }

  allInstances(): Instance[] {
    return [
      ...(this.current?.instances ?? []),
      ...(this.pending?.instances ?? []),
      ...this.stopping,
      ...this.leftovers,
    ];
  }

  state(): AgentAppState {
    const rollout = { ...this.rollout };
    if (rollout.logTail) rollout.logTail = [...rollout.logTail];
    return {
      name: this.name,
      specDigest: this.#specDigest,
      release: this.current?.spec.release ?? null,
      rollout,
      instances: this.allInstances().map((i) => i.info()),
    };
  }

  private setRollout(release: string, status: RolloutStatus, error?: string, logTail?: string[]): void {
    this.rollout = { release, status, updatedAt: new Date().toISOString() };
    if (error !== undefined) this.rollout.error = error;
    if (logTail !== undefined) this.rollout.logTail = logTail;
  }

  private abortPending(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    for (const i of p.instances) this.stopInBackground(i, false);
  }

  private clearLeftovers(): void {
    for (const i of this.leftovers) void i.stop(0);
    this.leftovers = [];
  }

  private stopInBackground(inst: Instance, drain: boolean): void {
    this.stopping.add(inst);
    inst.beginStop();
    void (async () => {
      if (drain) {
        const deadline = Date.now() + this.deps.drainTimeoutMs;
        while (inst.inFlight > 0 && Date.now() < deadline) await sleep(25);
      }
      await inst.stop(this.deps.stopGraceMs);
      this.stopping.delete(inst);
      this.deps.onChange();
    })();
  }

  private scale(spec: AppSpec): void {
    const gen = this.current as Generation;
    gen.spec = spec;
    const types = new Set([...Object.keys(spec.processes), ...gen.instances.map((i) => i.processType)]);
    for (const type of types) {
      const desired = spec.processes[type]?.instances ?? 0;
      const mine = gen.instances.filter((i) => i.processType === type);
      for (const f of mine.filter((i) => !i.live && !(i.finished && desired > 0))) {
        gen.instances.splice(gen.instances.indexOf(f), 1);
        void f.stop(0);
      }
      const live = mine.filter((i) => i.live).sort((a, b) => b.seq - a.seq);
      // Finished one-offs stay listed and count as done: scaling other types does not run them again.
      const done = desired > 0 ? mine.filter((i) => i.finished).length : 0;
      for (let n = live.length + done; n < desired; n++) {
        const inst = this.deps.createInstance(spec, type);
        gen.instances.push(inst);
        void inst.start();
      }
      for (const extra of live.slice(0, Math.max(0, live.length + done - desired))) {
        gen.instances.splice(gen.instances.indexOf(extra), 1);
        this.stopInBackground(extra, true);
      }
    }
    for (const i of gen.instances) i.log.setMask(spec.maskValues ?? []);
  }

  /** `finished`: one-offs per type that already ran for this spec (restored): listed as done, not started. */
  private startRollout(spec: AppSpec, finished: Record<string, number> = {}): void {
    this.abortPending();
    const gen: Generation = { spec, instances: [] };
    for (const [type, p] of Object.entries(spec.processes)) {
      const count = Object.hasOwn(finished, type) ? finished[type] : 0;
      const done = type !== 'web' && Number.isInteger(count) ? (count as number) : 0;
      for (let n = 0; n < p.instances; n++) {
        const inst = this.deps.createInstance(spec, type);
        if (n < done) inst.markFinished();
        gen.instances.push(inst);
      }
    }
    this.pending = gen;
    this.setRollout(spec.release, 'rolling');
    this.deps.onChange();
    void this.runRollout(gen);
  }

  private async runRollout(gen: Generation): Promise<void> {
    const log = this.deps.logger.child({ release: gen.spec.release });
    const aborted = () => this.pending !== gen || this.destroyed;
    try {
      await this.deps.prepare(gen.spec);
    } catch (err) {
      if (aborted()) return;
      this.pending = null;
      const msg = (err as Error).message;
      log.warn({ err: msg }, 'rollout failed: release not usable');
      this.setRollout(gen.spec.release, 'failed', msg, []);
      this.deps.onChange();
      return;
    }
    if (aborted()) return;
    log.info({ instances: gen.instances.length }, 'rollout started');
    for (const i of gen.instances) if (!i.finished) void i.start();
    const deadline = Date.now() + this.deps.startTimeoutMs;
    let failure: { error: string; culprits: Instance[] } | null = null;
    for (;;) {
      if (aborted()) return;
      const failed = gen.instances.filter((i) => i.status === 'failed' || i.gaveUp);
      if (failed.length > 0) {
        failure = { error: failed[0]?.error ?? 'instance failed', culprits: failed };
        break;
      }
      // A finished one-off (non-web, exited 0) does not hold up or fail the rollout.
      if (gen.instances.every((i) => i.status === 'running' || i.finished)) break;
      if (Date.now() > deadline) {
        const slow = gen.instances.filter((i) => i.status !== 'running' && !i.finished);
        const types = [...new Set(slow.map((i) => i.processType))].join(', ');
        failure = {
          error: `${types} not healthy within ${this.deps.startTimeoutMs}ms${slow[0]?.error ? ` (${slow[0].error})` : ''}`,
          culprits: slow,
        };
        break;
      }
      await sleep(50);
    }
    if (aborted()) return;
    this.pending = null;
    if (failure) {
      const tail = failure.culprits.flatMap((i) => i.log.recent.slice(-20));
      log.warn({ err: failure.error }, 'rollout failed');
      this.setRollout(gen.spec.release, 'failed', failure.error, tail.slice(-20));
      if (!this.current) {
        // Nothing old to keep serving: the failed instances stay listed so the failure is visible.
        this.clearLeftovers();
        this.leftovers = gen.instances;
        for (const i of gen.instances) if (i.live) void i.stop(this.deps.stopGraceMs);
      } else {
        for (const i of gen.instances) if (i.live) this.stopInBackground(i, false);
      }
      this.deps.onChange();
      return;
    }
    // Switch: from here on the router only sees the new generation.
    const old = this.current;
    this.current = gen;
    this.clearLeftovers();
    this.setRollout(gen.spec.release, 'ready');
    log.info('rollout ready; draining old instances');
    if (old) for (const i of old.instances) this.stopInBackground(i, true);
    this.deps.onChange();
  }

  /** Stops everything; returns how many instances were alive. */
  async destroy(): Promise<number> {
    this.#finishedAtDestroy = this.finishedOneOffs();
    this.destroyed = true;
    const all = this.allInstances();
    const alive = all.filter((i) => i.live).length;
    this.pending = null;
    await Promise.all(all.map((i) => i.stop(this.deps.stopGraceMs)));
    this.current = null;
    this.leftovers = [];
    this.stopping.clear();
    return alive;
  }
}
