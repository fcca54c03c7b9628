/**
 * The build worker: claims build jobs from the durable queue and runs their deployments, at most
 * `builds.maxConcurrent` at a time and one at a time per app (a job of an app that is busy is held, with
 * its lease, until the app's deployment ends). It stops a deployment whose cancel was asked for (killing
 * the build's process tree), fails a build that runs past `builds.timeoutMs`, and retries with exponential
 * backoff what the platform cut off (worker killed, control plane restarted), never a failing app build.
 *
 * One worker serves a platform: {@link BuildWorkerOptions.lock} makes that hold across processes, so on
 * start every deployment still `building` or `deploying` was cut off and is recovered here.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type MinipaasConfig, MinipaasError } from '@minipaas/core';
import type { Queue, QueueMessage } from '@minipaas/sql';
import type { Logger } from 'pino';
import type { AppService } from '../services/app-service.ts';
import { BUILD_LEASE_MS, type BuildJob } from './build-queue.ts';
import { DeploymentAborted, DeploymentRunner } from './deployment-runner.ts';
import { ACTIVE_STATUSES, isTerminal } from './deployment-status.ts';
import type { DeploymentRow, DeploymentStore } from './deployment-store.ts';

export interface BuildWorkerOptions {
  queue: Queue<BuildJob>;
  deployments: DeploymentStore;
  runner: DeploymentRunner;
  apps: AppService;
  config: MinipaasConfig;
  log: Logger;
  /**
   * Takes the platform's worker lock (waiting while another worker holds it) and returns its release.
   * Without it this worker assumes it is the only one.
   */
  lock?: () => Promise<() => Promise<void>>;
  /** Idle poll of the queue when no notification arrives, in ms (default 1000). */
  pollIntervalMs?: number;
  /** How often running deployments are checked for a cancel request, in ms (default 250). */
  cancelPollMs?: number;
  /**
   * Stop claiming after this long with nothing to do and call {@link BuildWorkerOptions.onIdle} (a worker
   * process then exits, so an idle platform does not keep it in memory). Default: never.
   */
  idleExitMs?: number;
  onIdle?: () => void;
  /** LISTEN on the queue's channel (its NOTIFY on enqueue wakes the worker at once); else it polls. */
  listen?: (channel: string, onNotify: () => void) => Promise<() => Promise<void>>;
}

interface Held {
  msgId: number;
  deploymentId: string;
  appId: string;
}

interface Running extends Held {
  ac: AbortController;
  done: Promise<void>;
}

/** Failures of the platform rather than of the app: retried like a crash. */
const PLATFORM_ERRORS: ReadonlySet<string> = new Set([
  'MINIPAAS_ERR_AGENT_UNAVAILABLE',
  'MINIPAAS_ERR_INTERNAL',
]);

/** A staged source with no deployment row is an upload cut off by a crash once it is this old. */
const STALE_UPLOAD_MS = 3600_000;

export class BuildWorker {
  readonly #o: BuildWorkerOptions;
  readonly #running = new Map<string, Running>();
  #held: Held[] = [];
  #stopping: 'abort' | 'drain' | null = null;
  #wake: (() => void) | null = null;
  #woken = false;
  #loop: Promise<void> | null = null;
  #timers: NodeJS.Timeout[] = [];
  #unlock: (() => Promise<void>) | null = null;
  #unlisten: (() => Promise<void>) | null = null;

  constructor(opts: BuildWorkerOptions) {
    this.#o = opts;
  }

  /** Deployments running right now (ids). */
  get running(): string[] {
    return [...this.#running.keys()];
  }

  /** Takes the lock, recovers what a previous worker left, then claims jobs in the background. */
  async start(): Promise<void> {
    if (this.#o.lock) this.#unlock = await this.#o.lock();
    await this.recover();
    const cancelPoll = setInterval(() => void this.#checkCancels(), this.#o.cancelPollMs ?? 250);
    const heartbeat = setInterval(() => void this.#heartbeat(), BUILD_LEASE_MS / 3);
    cancelPoll.unref();
    heartbeat.unref();
    this.#timers.push(cancelPoll, heartbeat);
    if (this.#o.listen) {
      try {
        this.#unlisten = await this.#o.listen(this.#o.queue.name, () => this.wake());
      } catch (err) {
        this.#o.log.warn({ err }, 'cannot LISTEN for new build jobs; polling');
      }
    }
    this.#loop = this.#run().catch((err: unknown) => this.#o.log.error({ err }, 'build worker loop crashed'));
  }

  /** Looks at the queue now (a deploy was queued or a cancel asked for). */
  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }

  /**
   * Stops. `abort`: running deployments are stopped before their switch and queued again (a platform
   * restart does not count as an attempt). `drain`: no new jobs, running ones finish.
   */
  async stop(mode: 'abort' | 'drain' = 'abort'): Promise<void> {
    this.#stopping ??= mode;
    if (mode === 'abort') for (const r of this.#running.values()) r.ac.abort('shutdown');
    this.wake();
    await this.#loop;
    await Promise.allSettled([...this.#running.values()].map((r) => r.done));
    for (const t of this.#timers) clearInterval(t);
    await this.#unlisten?.().catch(() => undefined);
    // Jobs held for busy apps go back to the queue at once.
    const held = this.#held.map((h) => h.msgId);
    this.#held = [];
    if (held.length > 0) await this.#o.queue.nack(held, { delayMs: 0 }).catch(() => undefined);
    await this.#unlock?.().catch(() => undefined);
    this.#unlock = null;
  }

  /**
   * Deployments a dead worker left `building` or `deploying` are retried (up to `builds.retries` times, with
   * backoff) or failed with the reason; jobs it held are released at once instead of when their lease ends.
   */
  async recover(): Promise<number> {
    const { deployments, config, queue, log } = this.#o;
    const db = deployments.db;
    const cut = await db
      .selectFrom('deployments')
      .selectAll()
      .where('status', 'in', [...ACTIVE_STATUSES])
      .execute();
    const requeued = new Set<string>();
    for (const row of cut) {
      const reason =
        'interrupted: the build worker stopped during this deployment (platform restart or crash)';
      if (row.cancel_requested) {
        await this.#finish(row, 'cancelled', 'cancelled');
        if (row.job_id !== null) await queue.ack(Number(row.job_id));
      } else if (row.attempts <= config.builds.retries) {
        const delayMs = backoff(config.builds.retryDelayMs, row.attempts);
        await deployments.append(row.id, [`!!!    ${reason}; retrying in ${Math.round(delayMs / 1000)}s`]);
        await deployments.transition(row.id, 'queued', {}, [row.status as 'building' | 'deploying']);
        if (row.job_id !== null) await queue.nack(Number(row.job_id), { delayMs, error: reason });
        requeued.add(row.id);
      } else {
        await this.#finish(row, 'failed', `${reason}; gave up after ${row.attempts} attempts`);
        if (row.job_id !== null) await queue.ack(Number(row.job_id));
      }
      log.warn(
        { deploymentId: row.id, attempts: row.attempts },
        'recovered a deployment cut off by a restart',
      );
    }
    // Apps whose deployment was cut off go back to what is really there: their last release, or failed.
    await db
      .updateTable('apps')
      .set((eb) => ({
        status: eb.case().when('current_release', 'is not', null).then('running').else('failed').end(),
        updated_at: new Date(),
      }))
      .where('status', '=', 'deploying')
      .execute();
    // Jobs the dead worker held (leased) for queued deployments: visible again now.
    const queued = await db
      .selectFrom('deployments')
      .select(['id', 'job_id'])
      .where('status', '=', 'queued')
      .where('job_id', 'is not', null)
      .execute();
    const ids = queued.filter((r) => !requeued.has(r.id)).map((r) => Number(r.job_id));
    if (ids.length > 0) await queue.nack(ids, { delayMs: 0 });
    // Staged sources nobody will build any more: those of finished deployments, and leftovers of uploads
    // cut off before their deployment existed (old enough not to be an upload arriving right now).
    const builds = join(config.home, 'builds');
    const names = await readdir(builds).catch(() => [] as string[]);
    if (names.length > 0) {
      const ids = names.map((n) => n.replace(/\.upload$/, ''));
      const rows = await db
        .selectFrom('deployments')
        .select(['id', 'status'])
        .where('id', 'in', ids)
        .execute();
      const status = new Map(rows.map((r) => [r.id, r.status]));
      for (const n of names) {
        const s = status.get(n.replace(/\.upload$/, ''));
        const mtime = s === undefined ? (await stat(join(builds, n)).catch(() => null))?.mtimeMs : undefined;
        const stale =
          s === undefined ? mtime !== undefined && Date.now() - mtime > STALE_UPLOAD_MS : isTerminal(s);
        if (stale) await rm(join(builds, n), { recursive: true, force: true });
      }
    }
    return cut.length;
  }

  async #run(): Promise<void> {
    const { queue, log } = this.#o;
    let errorDelay = 0;
    let lastBusy = Date.now();
    while (!this.#stopping) {
      this.#woken = false;
      let progressed = false;
      try {
        // Held jobs first (they were claimed earlier), in claim order.
        for (const h of [...this.#held]) {
          if (this.#running.size >= this.#slots) break;
          if (this.#busy(h.appId)) continue;
          this.#held = this.#held.filter((x) => x !== h);
          await this.#launch(h);
          progressed = true;
        }
        if (this.#running.size < this.#slots) {
          const [m] = await queue.dequeue(1, { visibilityTimeoutMs: BUILD_LEASE_MS });
          if (m) {
            await this.#claim(m);
            progressed = true;
          }
        }
        errorDelay = 0;
      } catch (err) {
        log.error({ err }, 'build queue error');
        errorDelay = Math.min(Math.max(errorDelay * 2, 200), 10_000);
        await this.#sleep(errorDelay);
        continue;
      }
      if (progressed || this.#running.size > 0 || this.#held.length > 0) lastBusy = Date.now();
      else if (this.#o.idleExitMs !== undefined && Date.now() - lastBusy >= this.#o.idleExitMs) {
        this.#o.onIdle?.();
        return;
      }
      if (!progressed) await this.#sleep(this.#o.pollIntervalMs ?? 1000);
    }
  }

  get #slots(): number {
    return this.#o.config.builds.maxConcurrent;
  }

  #busy(appId: string): boolean {
    for (const r of this.#running.values()) if (r.appId === appId) return true;
    return false;
  }

  #sleep(ms: number): Promise<void> {
    if (this.#woken || this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      let t: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(t);
        this.#wake = null;
        resolve();
      };
      t = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  async #claim(m: QueueMessage<BuildJob>): Promise<void> {
    const { deployments, queue } = this.#o;
    const row = await deployments.row(m.payload.deploymentId);
    if (row?.status !== 'queued') {
      // Cancelled, superseded or finished while it waited (or an unknown job): nothing to do.
      await queue.ack(m.id);
      return;
    }
    const h: Held = { msgId: m.id, deploymentId: row.id, appId: row.app_id };
    if (this.#busy(row.app_id) || this.#held.some((x) => x.appId === row.app_id)) {
      this.#held.push(h);
      return;
    }
    await this.#launch(h);
  }

  async #launch(h: Held): Promise<void> {
    const { deployments, queue, runner, config, log } = this.#o;
    const row = await deployments.row(h.deploymentId);
    const first = row?.kind === 'build' && row.release_version === null ? 'building' : 'deploying';
    const started =
      row && row.status === 'queued'
        ? await deployments.transition(row.id, first, { attempts: row.attempts + 1, error: null }, ['queued'])
        : undefined;
    if (!started) {
      await queue.ack(h.msgId);
      return;
    }
    const ac = new AbortController();
    const timeout = setTimeout(() => ac.abort('timeout'), config.builds.timeoutMs);
    const r: Running = { ...h, ac, done: Promise.resolve() };
    this.#running.set(h.deploymentId, r);
    log.info(
      { deploymentId: started.id, appId: started.app_id, attempt: started.attempts },
      'deployment started',
    );
    r.done = runner
      .run(started, ac.signal)
      .then(
        () => this.#settle(started, h, null),
        (err: unknown) => this.#settle(started, h, err),
      )
      .catch((err: unknown) =>
        log.error({ err, deploymentId: h.deploymentId }, 'cannot record a deployment outcome'),
      )
      .finally(() => {
        clearTimeout(timeout);
        this.#running.delete(h.deploymentId);
        this.wake();
      });
  }

  /** Records how a run ended: done, failed, cancelled, or back in the queue for a retry. */
  async #settle(row: DeploymentRow, h: Held, err: unknown): Promise<void> {
    const { deployments, queue, config, log } = this.#o;
    if (err === null) {
      await queue.ack(h.msgId);
      return;
    }
    const aborted = err instanceof DeploymentAborted || (err as Error)?.name === 'AbortError';
    const reason =
      err instanceof DeploymentAborted
        ? err.reason
        : aborted
          ? this.#running.get(h.deploymentId)?.ac.signal.reason
          : null;
    if (aborted && reason === 'cancel') {
      await this.#finish(
        row,
        'cancelled',
        'cancelled on request',
        '-----> Cancelled; the previous release keeps serving',
      );
      await queue.ack(h.msgId);
    } else if (aborted && reason === 'timeout') {
      await this.#finish(
        row,
        'failed',
        `the build timed out after ${Math.round(config.builds.timeoutMs / 1000)}s`,
      );
      await queue.ack(h.msgId);
    } else if (aborted && reason === 'shutdown') {
      // The platform is stopping: back to the queue as it was (this attempt does not count).
      await deployments.append(row.id, [
        '-----> The build worker is stopping; this deployment will run again',
      ]);
      await deployments.transition(row.id, 'queued', { attempts: Math.max(0, row.attempts - 1) }, [
        'building',
        'deploying',
      ]);
      await queue.nack(h.msgId, { delayMs: 0 });
    } else if (err instanceof MinipaasError && !PLATFORM_ERRORS.has(err.code)) {
      // The app's own failure (build, release phase, health checks): never retried.
      await this.#finish(row, 'failed', err.message);
      await queue.ack(h.msgId);
    } else {
      const message = `platform failure: ${(err as Error)?.message ?? String(err)}`;
      log.error({ err, deploymentId: row.id }, 'deployment hit a platform error');
      if (row.attempts <= config.builds.retries) {
        const delayMs = backoff(config.builds.retryDelayMs, row.attempts);
        await deployments.append(row.id, [`!!!    ${message}; retrying in ${Math.round(delayMs / 1000)}s`]);
        await deployments.transition(row.id, 'queued', {}, ['building', 'deploying']);
        await queue.nack(h.msgId, { delayMs, error: message });
      } else {
        await this.#finish(row, 'failed', `${message} (gave up after ${row.attempts} attempts)`);
        await queue.ack(h.msgId);
      }
    }
  }

  async #finish(
    row: DeploymentRow,
    status: 'failed' | 'cancelled',
    error: string,
    line = `!!!    ${error}`,
  ): Promise<void> {
    const { deployments } = this.#o;
    await deployments.append(row.id, [line]);
    await deployments.transition(row.id, status, { error });
    await DeploymentRunner.dropSource(row);
  }

  async #checkCancels(): Promise<void> {
    const ids = [...this.#running.keys()];
    if (ids.length === 0) return;
    try {
      for (const id of await this.#o.deployments.cancelRequested(ids)) {
        const r = this.#running.get(id);
        if (r && !r.ac.signal.aborted) r.ac.abort('cancel');
      }
    } catch (err) {
      this.#o.log.warn({ err }, 'cannot check for cancel requests');
    }
  }

  async #heartbeat(): Promise<void> {
    const ids = [...[...this.#running.values()].map((r) => r.msgId), ...this.#held.map((h) => h.msgId)];
    if (ids.length === 0) return;
    await this.#o.queue
      .extend(ids, BUILD_LEASE_MS)
      .catch((err: unknown) => this.#o.log.warn({ err }, 'cannot extend build leases'));
  }
}

/** Exponential backoff: `base`, then twice as long for every further attempt. */
export function backoff(base: number, attempt: number): number {
  return base * 2 ** Math.max(0, attempt - 1);
}
