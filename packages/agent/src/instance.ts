import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type {
  HealthcheckSpec,
  HttpCheck,
  InstanceInfo,
  InstanceStatus,
  LimitsEnforcement,
  UsageSample,
} from '@minipaas/core';
import type { RunAs } from '@minipaas/runtime-process/run-as';
import type { Logger } from 'pino';
import { type Cgroups, createCgroups, type InstanceCgroup } from './cgroup.ts';
import { type CheckTarget, livenessChecks, startupChecks } from './health-checks.ts';
import { probe } from './health-probe.ts';
import type { InstanceLog } from './log-store.ts';
import { canBind, type PortAllocator } from './port-allocator.ts';
import { shellScript } from './procfile-command.ts';
import {
  type LimitHandle,
  type Limits,
  procUsage,
  type ResourceLimiter,
  type UsageReading,
} from './resource-limits.ts';
import { CrashTracker, type RestartPolicy } from './restart-policy.ts';

export interface InstanceOptions {
  id: string;
  app: string;
  processType: string;
  release: string;
  command: string;
  dir: string;
  /** Full environment (base + app env + metadata); PORT is added for web instances. */
  env: Record<string, string>;
  web: boolean;
  healthcheck?: HealthcheckSpec;
  runAs: RunAs | null;
  ports: PortAllocator;
  log: InstanceLog;
  policy: RestartPolicy;
  logger: Logger;
  /** Called with the pid whenever a process is spawned or exits (for orphan bookkeeping). */
  onProcess?: (inst: Instance) => void;
  /**
   * Puts each process of the instance in its own cgroup so that everything it starts (even with
   * `setsid`) is killed with it. Default: no cgroups, process group only.
   */
  cgroups?: Cgroups;
  /** Memory/CPU limits of every process of the instance, applied by `limiter` (issue 9). */
  limits?: Limits;
  limiter?: ResourceLimiter;
  /** What to do when the process exits on its own (default `always`). */
  restart?: 'always' | 'on-failure' | 'no';
}

/** Usage samples kept per instance (with the default 5 s interval: the last 10 minutes). */
export const MAX_SAMPLES = 120;

/**
 * The shell holds the app's command until the agent has put the shell in its cgroup and writes a
 * line on fd 3; then fd 3 is closed and the command runs ({@link shellScript}: a simple command replaces
 * the shell). Nothing of the app runs outside the cgroup, and the app sees stdin /dev/null and no fd 3.
 */
const GATE = 'read _ <&3 || exit 125; exec 3<&-; ';
/** How long after a spawn a web instance is probed every 10 ms before the probes back off. */
const FAST_PROBE_MS = 1000;

let seq = 0;

/**
 * One instance slot of an app's process type: it keeps its id, port and log file across restarts.
 * Emits `status` on every status change.
 */
export class Instance extends EventEmitter {
  readonly id: string;
  readonly app: string;
  readonly processType: string;
  readonly release: string;
  readonly createdAt: string;
  /** Creation order, for "remove newest first". */
  readonly seq: number;
  status: InstanceStatus = 'pending';
  pid: number | null = null;
  port: number | null = null;
  restarts = 0;
  lastExitCode: number | null = null;
  lastExitSignal: string | null = null;
  startedAt: string | null = null;
  error: string | undefined;
  /** Requests the router is currently proxying to this instance. */
  inFlight = 0;
  /**
   * True once a non-web process exited 0 by itself: a finished one-off, `stopped` with exit code 0, never
   * restarted. It counts as done (not missing) for rollouts and scaling.
   */
  finished = false;
  /** Times the OOM killer ended a process of this instance. */
  oomKills = 0;
  /** True once the restart policy left the instance down after its process exited (not restarted). */
  ended = false;
  /** Recent CPU/memory samples, oldest first (see {@link Instance.sample}). */
  readonly samples: UsageSample[] = [];

  private readonly opts: InstanceOptions;
  /** The limits of the current process (null between processes or without limits). */
  private limit: LimitHandle | null = null;
  private limitsInfo: LimitsEnforcement | undefined;
  private lastReading: (UsageReading & { at: number }) | null = null;
  private child: ChildProcess | null = null;
  private startedMs = 0;
  private readonly crashes: CrashTracker;
  private restartTimer: NodeJS.Timeout | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private generation = 0;
  private stopRequested = false;
  private exitWaiters: Array<() => void> = [];
  private healthTimedOut = false;
  /** Why the current process is being killed for failing its app.json startup/readiness checks. */
  private checkFailure: string | null = null;
  private readonly cgroups: Cgroups;
  /** Where the current process runs (null between processes). */
  private cgroup: InstanceCgroup | null = null;
  /** Settles once everything the last process left behind is killed (see reap). */
  private reaping: Promise<void> = Promise.resolve();

  constructor(opts: InstanceOptions) {
    super();
    this.opts = opts;
    this.crashes = new CrashTracker(opts.policy);
    this.cgroups = opts.cgroups ?? createCgroups({ root: 'minipaas', version: 'none' });
    this.id = opts.id;
    this.app = opts.app;
    this.processType = opts.processType;
    this.release = opts.release;
    this.createdAt = new Date().toISOString();
    this.seq = ++seq;
  }

  get log(): InstanceLog {
    return this.opts.log;
  }

  /** True while a process is (or is about to be) alive. */
  get live(): boolean {
    return !this.ended && this.status !== 'stopped' && this.status !== 'failed';
  }

  /** Down for good after an exit its restart policy does not restart (counts as failed for a rollout). */
  get gaveUp(): boolean {
    return this.ended && this.status !== 'stopped';
  }

  /** Reads the current process's usage and appends a sample (CPU averaged since the previous reading). */
  sample(): UsageSample | null {
    if (this.pid === null) return null;
    const r = this.limit ? this.limit.read(this.pid) : procUsage(this.pid);
    if (!r) return null;
    const at = Date.now();
    const prev = this.lastReading;
    this.lastReading = { ...r, at };
    const cpuMillicores =
      prev && at > prev.at && r.cpuNs >= prev.cpuNs
        ? Math.round((r.cpuNs - prev.cpuNs) / 1000 / (at - prev.at))
        : 0;
    const s: UsageSample = { ts: new Date(at).toISOString(), cpuMillicores, memoryBytes: r.memoryBytes };
    this.samples.push(s);
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
    return s;
  }

  /** How the limits apply, when limits were asked for. */
  get limits(): LimitsEnforcement | undefined {
    return this.limitsInfo;
  }

  info(): InstanceInfo {
    const i: InstanceInfo = {
      id: this.id,
      app: this.app,
      processType: this.processType,
      release: this.release,
      pid: this.pid,
      port: this.port,
      status: this.status,
      restarts: this.restarts,
      lastExitCode: this.lastExitCode,
      lastExitSignal: this.lastExitSignal,
      startedAt: this.startedAt,
      createdAt: this.createdAt,
      cgroup: this.cgroup?.path ?? null,
    };
    if (
      this.error &&
      (this.status === 'failed' ||
        this.status === 'crashed' ||
        this.status === 'restarting' ||
        this.status === 'oom-killed')
    ) {
      i.error = this.error;
    }
    if (this.oomKills > 0) i.oomKills = this.oomKills;
    if (this.limitsInfo) i.limits = this.limitsInfo;
    const last = this.samples.at(-1);
    if (last && this.pid !== null) i.usage = last;
    return i;
  }

  private setStatus(s: InstanceStatus): void {
    if (this.status === s) return;
    this.status = s;
    this.emit('status', s);
  }

  private system(line: string): void {
    this.opts.log.write('system', line);
  }

  /**
   * A one-off that finished under a previous agent (restored from its state file): done, not run again.
   * Only for an instance that never started.
   */
  markFinished(): void {
    this.finished = true;
    this.lastExitCode = 0;
    this.setStatus('stopped');
    this.system(`${this.processType} finished before the agent restarted; not run again`);
  }

  /** Allocates a port (web) and spawns the first process. */
  async start(): Promise<void> {
    if (this.opts.web && this.port === null) {
      try {
        this.port = await this.opts.ports.allocate();
      } catch (err) {
        this.fail(`cannot allocate a port: ${(err as Error).message}`);
        return;
      }
    }
    if (this.stopRequested) {
      this.opts.ports.release(this.port);
      this.port = null;
      return;
    }
    this.spawnProcess();
  }

  /** Before a restart: if something else grabbed our port meanwhile, move to a fresh one. */
  private async ensurePort(): Promise<void> {
    if (!this.opts.web || this.port === null || (await canBind(this.port))) return;
    const old = this.port;
    this.port = await this.opts.ports.allocate();
    this.opts.ports.release(old);
    this.system(`port ${old} is taken by another process; moving to port ${this.port}`);
  }

  private spawnProcess(): void {
    const gen = ++this.generation;
    const env = { ...this.opts.env };
    if (this.opts.web && this.port !== null) env.PORT = String(this.port);
    this.setStatus('starting');
    this.healthTimedOut = false;
    this.checkFailure = null;
    this.startedMs = Date.now();
    this.startedAt = new Date(this.startedMs).toISOString();
    let cgroup: InstanceCgroup;
    try {
      cgroup = this.cgroups.open(this.app, this.id);
    } catch (err) {
      this.onExit(gen, null, null, `cannot create the instance's cgroup: ${(err as Error).message}`);
      return;
    }
    this.cgroup = cgroup;
    if (this.opts.limiter && this.opts.limits) {
      try {
        this.limit = this.opts.limiter.open(this.app, this.id, this.opts.limits);
      } catch (err) {
        this.onExit(
          gen,
          null,
          null,
          `cannot apply the instance's resource limits: ${(err as Error).message}`,
        );
        return;
      }
      if (!this.limitsInfo && this.limit.enforcement.mode === 'unsupported')
        this.system(`resource limits not enforced: ${this.limit.enforcement.reason}`);
      this.limitsInfo = this.limit.enforcement;
      this.lastReading = null;
    }
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', `${GATE}${shellScript(this.opts.command)}`], {
        cwd: this.opts.dir,
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        ...(this.opts.runAs ? { uid: this.opts.runAs.uid, gid: this.opts.runAs.gid } : {}),
      });
    } catch (err) {
      this.onExit(gen, null, null, `spawn failed: ${(err as Error).message}`);
      return;
    }
    this.child = child;
    this.pid = child.pid ?? null;
    const gate = child.stdio[3] as NodeJS.WritableStream | null;
    // EPIPE when the shell died before reading the gate: its exit is handled below.
    gate?.on('error', () => {});
    let gateError: string | undefined;
    if (this.pid !== null) {
      try {
        cgroup.add(this.pid);
        this.limit?.add(this.pid);
        gate?.end('go\n');
      } catch (err) {
        // Never run the app outside its cgroup: the shell dies at the gate and the exit says why.
        gateError = `cannot put the process in its cgroup: ${(err as Error).message}`;
        child.kill('SIGKILL');
      }
    }
    this.system(
      `starting ${this.processType} (release ${this.release}${this.port !== null ? `, port ${this.port}` : ''}, pid ${this.pid ?? '?'}): ${this.opts.command}`,
    );
    this.opts.logger.info({ pid: this.pid, port: this.port }, 'instance started');
    this.opts.onProcess?.(this);
    pipeLines(child.stdout, (l) => this.opts.log.write('stdout', l));
    pipeLines(child.stderr, (l) => this.opts.log.write('stderr', l));
    let done = false;
    child.once('error', (err) => {
      if (done) return;
      done = true;
      this.onExit(gen, null, null, `spawn failed: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      if (done) return;
      done = true;
      this.onExit(gen, code, signal, gateError);
    });
    this.scheduleProbe(gen);
  }

  /** Waits `ms` on the health timer (cleared when the process exits or the instance stops). */
  private healthSleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.healthTimer = setTimeout(() => {
        this.healthTimer = null;
        resolve();
      }, ms);
    });
  }

  /** The instance's current process as seen by the check loops, while `current` holds. */
  private checkTarget(current: () => boolean): CheckTarget {
    return {
      port: this.port as number,
      startedMs: this.startedMs,
      startTimeoutMs: this.opts.policy.startTimeoutMs,
      probeIntervalMs: this.opts.policy.probeIntervalMs,
      current,
      sleep: (ms) => this.healthSleep(ms),
    };
  }

  /**
   * app.json checks of a starting web instance ({@link startupChecks}): it is `running` once every startup
   * and readiness check passed; a check that fails `attempts` times kills it and marks it `failed`.
   */
  private async runChecks(gen: number, checks: HttpCheck[]): Promise<void> {
    const starting = () => gen === this.generation && this.status === 'starting';
    const reason = await startupChecks(this.checkTarget(starting), checks);
    if (!starting()) return;
    if (reason !== null) {
      this.checkFailure = reason;
      this.error = reason;
      this.system(`${reason}; killing it`);
      this.signal('SIGKILL');
      return;
    }
    this.setStatus('running');
    this.system(`${this.processType} is running on port ${this.port} (app.json checks passed)`);
    void this.runLiveness(gen, checks);
  }

  /** Liveness checks of a running web instance ({@link livenessChecks}): a failure restarts it (a crash). */
  private async runLiveness(gen: number, checks: HttpCheck[]): Promise<void> {
    const running = () => gen === this.generation && this.status === 'running';
    const reason = await livenessChecks(this.checkTarget(running), checks);
    if (reason === null || !running()) return;
    this.healthTimedOut = true;
    this.error = reason;
    this.system(`${reason}; restarting it`);
    this.signal('SIGKILL');
  }

  private scheduleProbe(gen: number): void {
    const checks = (this.opts.web ? this.opts.healthcheck?.checks : undefined) ?? [];
    const liveness = checks.filter((c) => c.type === 'liveness');
    if (checks.length > liveness.length) {
      void this.runChecks(gen, checks);
      return;
    }
    const policy = this.opts.policy;
    const deadline = this.startedMs + policy.startTimeoutMs;
    // Probe web instances every 10 ms for the first second after spawn (most apps listen within tens of
    // ms, and a refused loopback connect costs microseconds), then back off geometrically to
    // probeIntervalMs so slow starters do not cost much.
    let delay = 10;
    const tick = async (): Promise<void> => {
      this.healthTimer = null;
      if (gen !== this.generation || this.status !== 'starting') return;
      let ok: boolean;
      if (!this.opts.web) ok = Date.now() - this.startedMs >= policy.nonWebHealthyMs;
      else ok = await probe(this.port as number, this.opts.healthcheck);
      if (gen !== this.generation || this.status !== 'starting') return;
      if (ok) {
        this.setStatus('running');
        this.system(`${this.processType} is running${this.port !== null ? ` on port ${this.port}` : ''}`);
        // Only liveness checks: the port (or `path`) gates the start, the checks watch what runs.
        if (liveness.length > 0) void this.runLiveness(gen, liveness);
        return;
      }
      if (Date.now() > deadline) {
        this.healthTimedOut = true;
        this.error = `not healthy within ${policy.startTimeoutMs}ms`;
        this.system(`${this.error}; killing it`);
        this.signal('SIGKILL');
        return;
      }
      if (Date.now() - this.startedMs >= FAST_PROBE_MS)
        delay = Math.min(policy.probeIntervalMs, Math.ceil(delay * 1.5));
      this.healthTimer = setTimeout(() => void tick(), delay);
    };
    this.healthTimer = setTimeout(() => void tick(), this.opts.web ? delay : policy.nonWebHealthyMs);
  }

  private onExit(
    gen: number,
    code: number | null,
    signal: NodeJS.Signals | null,
    spawnError: string | undefined,
  ): void {
    if (gen !== this.generation) return;
    if (this.healthTimer) clearTimeout(this.healthTimer);
    this.healthTimer = null;
    const pid = this.pid;
    // Read before the cgroup goes: did the OOM killer end it?
    const oom = (this.limit?.oomKills() ?? 0) > 0;
    if (oom) this.oomKills++;
    // Whatever the process left behind (its cgroup, or its group) goes with it.
    const reaped = this.reap(pid);
    this.reaping = reaped;
    this.child = null;
    this.lastExitCode = code;
    this.lastExitSignal = signal;
    const uptime = Date.now() - this.startedMs;
    const how =
      spawnError ??
      (oom
        ? `was killed by the OOM killer at its ${this.opts.limits?.memoryMb} MiB memory limit`
        : signal
          ? `killed by ${signal}`
          : `exited with code ${code}`);
    this.opts.logger.info({ pid, code, signal, uptime }, 'instance exited');
    this.opts.onProcess?.(this);
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    const wake = () => {
      for (const w of waiters) w();
    };
    if (this.stopRequested) {
      void reaped.then(() => {
        this.system(`${this.processType} stopped (${how})`);
        this.finishStop();
        wake();
      });
      return;
    }
    this.pid = null;
    if (this.checkFailure !== null) {
      // Failed app.json checks are not a crash to retry: the release does not answer as it must.
      const reason = this.checkFailure;
      this.checkFailure = null;
      this.fail(reason);
      void reaped.then(wake);
      return;
    }
    if (!this.opts.web && code === 0 && signal === null && spawnError === undefined) {
      // A non-web process that exits 0 is a finished one-off (Heroku semantics), not a crash.
      void reaped.then(() => {
        if (gen !== this.generation || this.stopRequested) return wake();
        this.finished = true;
        this.error = undefined;
        this.system(`${this.processType} finished (exited with code 0); not restarted`);
        this.finishStop();
        wake();
      });
      return;
    }
    const restart = this.opts.restart ?? 'always';
    const clean = code === 0 && signal === null && spawnError === undefined && !oom;
    if (restart === 'no' || (restart === 'on-failure' && clean)) {
      // The restart policy leaves it down: oom-killed, crashed or (a clean exit) stopped.
      this.ended = true;
      this.finished = clean;
      this.error = clean ? undefined : `${this.processType} ${how}`;
      this.opts.ports.release(this.port);
      this.port = null;
      this.setStatus(clean ? 'stopped' : oom ? 'oom-killed' : 'crashed');
      void reaped.then(() => {
        this.system(`${this.processType} ${how}; not restarted (restart policy ${restart})`);
        this.opts.log.flush();
        wake();
      });
      return;
    }
    const verdict = this.crashes.record(uptime, !this.healthTimedOut);
    if (!this.healthTimedOut) this.error = `${this.processType} ${how}`;
    this.setStatus(oom ? 'oom-killed' : 'crashed');
    if (!verdict.restart) {
      const secs = Math.ceil(this.opts.policy.fastCrashMs / 1000);
      this.fail(
        `${this.processType} ${how} ${verdict.fastCrashes} times within ${secs}s of starting (crash loop)`,
      );
      void reaped.then(wake);
      return;
    }
    const delay = verdict.delayMs;
    this.system(`${this.processType} ${how}; restarting in ${delay}ms`);
    // An OOM kill stays visible as such until the next process starts.
    if (!oom) this.setStatus('restarting');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopRequested) return;
      // The next process starts once the last one's leftovers are gone (same cgroup).
      void reaped
        .then(() => this.ensurePort())
        .catch((err: unknown) => this.opts.logger.warn({ err: (err as Error).message }, 'cannot move port'))
        .then(() => {
          if (this.stopRequested) return;
          this.restarts++;
          this.spawnProcess();
        });
    }, delay);
    void reaped.then(wake);
  }

  /**
   * Kills everything the exited process `pid` left in its cgroup (or process group), removes the
   * cgroup, and reports in the instance log and the agent log whatever is still alive. Never rejects.
   */
  private async reap(pid: number | null): Promise<void> {
    const cgroup = this.cgroup;
    this.cgroup = null;
    const limit = this.limit;
    this.limit = null;
    if (!cgroup) {
      limit?.remove();
      return;
    }
    try {
      await this.reapCgroup(pid, cgroup);
    } finally {
      limit?.remove();
    }
  }

  private async reapCgroup(pid: number | null, cgroup: InstanceCgroup): Promise<void> {
    let left: number[];
    try {
      left = await cgroup.kill();
    } catch (err) {
      this.system(`cannot kill the processes left by ${this.processType}: ${(err as Error).message}`);
      this.opts.logger.warn(
        { pid, cgroup: cgroup.path, err: (err as Error).message },
        'cannot reap instance',
      );
      return;
    }
    if (left.length === 0) return;
    this.system(
      `could not kill ${left.length} process${left.length === 1 ? '' : 'es'} left by ${this.processType}: still alive: pid ${left.join(', ')}`,
    );
    this.opts.logger.warn(
      { pid, cgroup: cgroup.path, alive: left },
      'processes of an exited instance are still alive',
    );
  }

  private fail(reason: string): void {
    this.error = reason;
    this.system(`${reason} → failed`);
    this.opts.logger.warn({ reason }, 'instance failed');
    this.pid = null;
    this.opts.ports.release(this.port);
    this.port = null;
    this.setStatus('failed');
    this.opts.log.flush();
  }

  private finishStop(): void {
    this.pid = null;
    this.opts.ports.release(this.port);
    this.port = null;
    this.setStatus('stopped');
    this.opts.log.close();
  }

  private signal(sig: NodeJS.Signals): void {
    if (!this.child?.pid) return;
    try {
      this.cgroup?.signal(sig);
    } catch (err) {
      this.opts.logger.warn({ sig, err: (err as Error).message }, 'cannot signal instance');
    }
  }

  /** Takes the instance out of service without signalling it yet (used while draining). */
  beginStop(): void {
    this.stopRequested = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (this.healthTimer) clearTimeout(this.healthTimer);
    this.healthTimer = null;
    if (this.child && this.status !== 'stopping') {
      this.setStatus('stopping');
      this.system(`draining ${this.processType}`);
    }
  }

  /**
   * Stops the instance: SIGTERM to its processes, SIGKILL after `graceMs`. Resolves once the main
   * process and everything it started (its whole cgroup, or its process group) is gone.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopRequested = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (this.healthTimer) clearTimeout(this.healthTimer);
    this.healthTimer = null;
    if (!this.child) {
      await this.reaping;
      if (this.status === 'failed') {
        this.opts.log.close();
        return;
      }
      if (this.status !== 'stopped') {
        this.system(`${this.processType} stopped`);
        this.finishStop();
      }
      return;
    }
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    this.setStatus('stopping');
    this.system(`stopping ${this.processType} (SIGTERM)`);
    this.signal('SIGTERM');
    const killTimer = setTimeout(() => {
      this.system(`${this.processType} did not stop within ${graceMs}ms; SIGKILL`);
      this.signal('SIGKILL');
    }, graceMs);
    try {
      await exited;
    } finally {
      clearTimeout(killTimer);
    }
  }
}

/** Splits a stream into lines (without the newline) and calls `fn` for each, flushing the last partial line. */
export function pipeLines(stream: NodeJS.ReadableStream | null, fn: (line: string) => void): void {
  if (!stream) return;
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i = buf.indexOf('\n');
    while (i !== -1) {
      fn(buf.slice(0, i).replace(/\r$/, ''));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
    if (buf.length > 64 * 1024) {
      fn(buf);
      buf = '';
    }
  });
  stream.on('end', () => {
    if (buf) fn(buf);
    buf = '';
  });
  stream.on('error', () => {});
}
