/**
 * minipaasd's side of the separate build worker: starts `minipaas-build-worker` as a child with an IPC
 * channel (its own database pool; a heavy build cannot take the API down) when there is work — on start
 * when deployments wait, else with the first deployment queued; the worker exits after a while idle, so an
 * idle platform does not keep it in memory — restarts it with backoff when it dies, and stops it on shutdown. When minipaasd dies, even by SIGKILL, the channel closes and the worker
 * finishes the deployments it runs, then exits; the next worker waits for its lock meanwhile.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MinipaasConfig } from '@minipaas/core';
import type { Logger } from 'pino';

export const BUILD_WORKER_BIN = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'bin',
  'minipaas-build-worker.js',
);

/** The first message minipaasd sends its worker. */
export interface BuildWorkerInit {
  type: 'init';
  config: MinipaasConfig;
  databaseUrl: string;
}

export interface BuildWorkerProcessOptions {
  config: MinipaasConfig;
  databaseUrl: string;
  log: Logger;
  /** Program to run (default: the `minipaas-build-worker` bin of this package). */
  bin?: string;
  /** True when deployments wait or run (the worker is then needed). */
  hasWork: () => Promise<boolean>;
}

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;
/** A worker that ran this long before dying restarts at once again. */
const HEALTHY_AFTER_MS = 60_000;
const STOP_GRACE_MS = 20_000;

export class BuildWorkerProcess {
  readonly #o: BuildWorkerProcessOptions;
  #child: ChildProcess | null = null;
  #stopping = false;
  #delay = RESTART_MIN_MS;
  #timer: NodeJS.Timeout | undefined;
  /** Times the worker was (re)started. */
  starts = 0;

  constructor(opts: BuildWorkerProcessOptions) {
    this.#o = opts;
  }

  /** Process id of the running worker, if any. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the worker when deployments wait. */
  async startIfNeeded(): Promise<void> {
    if (await this.#o.hasWork()) this.ensureRunning();
  }

  /** Starts the worker unless it runs (a deployment was queued). */
  ensureRunning(): void {
    if (this.#child || this.#timer) return;
    this.start();
  }

  start(): void {
    if (this.#stopping) return;
    this.#timer = undefined;
    let idle = false;
    const startedAt = Date.now();
    const child = spawn(process.execPath, [...process.execArgv, this.#o.bin ?? BUILD_WORKER_BIN], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // MINIPAAS_HOME names the home it works for (`minipaas down` finds leftover workers by it).
      env: { ...process.env, MINIPAAS_HOME: this.#o.config.home },
    });
    this.#child = child;
    this.starts++;
    const init: BuildWorkerInit = { type: 'init', config: this.#o.config, databaseUrl: this.#o.databaseUrl };
    child.send(init, (err) => {
      if (err) this.#o.log.warn({ err: err.message }, 'cannot hand the build worker its settings');
    });
    child.on('error', (err) => this.#o.log.error({ err: err.message }, 'build worker: cannot start'));
    child.on('message', (m: { type?: string }) => {
      if (m?.type === 'idle') idle = true;
    });
    child.on('exit', (code, signal) => {
      if (this.#child === child) this.#child = null;
      if (this.#stopping) return;
      if (idle && code === 0) {
        this.#delay = RESTART_MIN_MS;
        // A deployment queued while it was leaving: start a new one for it.
        void this.startIfNeeded().catch((err: unknown) =>
          this.#o.log.warn({ err: (err as Error).message }, 'cannot check for queued deployments'),
        );
        return;
      }
      if (Date.now() - startedAt > HEALTHY_AFTER_MS) this.#delay = RESTART_MIN_MS;
      this.#o.log.warn(
        { code, signal, restartInMs: this.#delay },
        'the build worker exited; restarting it (interrupted builds are retried)',
      );
      this.#timer = setTimeout(() => this.start(), this.#delay);
      this.#delay = Math.min(RESTART_MAX_MS, this.#delay * 2);
    });
  }

  /** SIGTERM (running builds go back to the queue), SIGKILL after a grace period. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const grace = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(grace);
  }
}
