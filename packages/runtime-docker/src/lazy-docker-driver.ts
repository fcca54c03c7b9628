/**
 * The docker runtime for minipaasd without its weight until it is used. dockerode, tar-fs and the driver
 * add ~70 MiB RSS to a Node process, which is half the platform's footprint budget (docs/benchmarks.md), so
 * minipaasd asks the engine over plain `node:http` whether it answers and loads the real driver only when
 * a docker app exists: at start when the shared state file names one, on the first call that needs the
 * engine, or when a build worker's rollout adds one to the state file (noticed on the next `list()`, which
 * the reconciler calls every few seconds, so supervision starts within one tick of the first docker deploy).
 *
 * This module imports only node builtins and `@minipaas/core`; keep it that way.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import {
  homePaths,
  type LogLine,
  type LogQuery,
  type MinipaasConfig,
  MinipaasError,
  type RuntimeAppState,
  type RuntimeDriver,
  type RuntimeHealth,
  type RuntimeSpec,
} from '@minipaas/core';
import type { DockerBuilder } from './docker-builder.ts';
import type { CreateDockerRuntimeOptions, DockerRuntime } from './docker-runtime.ts';

/** Options of {@link LazyDockerDriver}. */
export interface LazyDockerOptions extends CreateDockerRuntimeOptions {
  /**
   * Run the driver's supervision loop (restarts, orphans) once loaded, and load at {@link
   * LazyDockerDriver.start} when docker apps exist. One process does this: minipaasd. Default false.
   */
  supervise?: boolean;
}

/** A {@link RuntimeDriver} named `docker` that loads the real `DockerDriver` on demand. */
export class LazyDockerDriver implements RuntimeDriver {
  readonly name = 'docker';
  readonly #config: MinipaasConfig;
  readonly #opts: LazyDockerOptions;
  readonly #stateFile: string;
  #loading: Promise<DockerRuntime> | null = null;
  #stopped = false;

  constructor(config: MinipaasConfig, opts: LazyDockerOptions = {}) {
    this.#config = config;
    this.#opts = opts;
    this.#stateFile = join(homePaths(config.home).run, 'docker-state.json');
  }

  /** Whether the real driver has been loaded (for tests and the footprint bench). */
  get loaded(): boolean {
    return this.#loading !== null;
  }

  /** Loads the driver now when the state file already names docker apps (they need supervising). */
  start(): void {
    if (this.#opts.supervise && this.#hasApps())
      void this.#driver().catch((err) => this.#opts.onWarning?.('docker runtime did not load', err));
  }

  stop(): void {
    this.#stopped = true;
    if (this.#loading) void this.#loading.then((rt) => rt.driver.stop()).catch(() => undefined);
  }

  async health(): Promise<RuntimeHealth> {
    if (this.#loading) return (await this.#driver()).health();
    const version = await engineVersion(this.#config.docker.socket);
    return { ok: true, version: `docker ${version}`, apps: 0, instances: 0 };
  }

  async apply(spec: RuntimeSpec): Promise<RuntimeAppState> {
    return (await this.#driver()).apply(spec);
  }

  async get(app: string): Promise<RuntimeAppState | null> {
    if (!this.#loading && !this.#hasApps(app)) return null;
    return (await this.#driver()).get(app);
  }

  async list(): Promise<RuntimeAppState[]> {
    if (!this.#loading && !this.#hasApps()) return [];
    return (await this.#driver()).list();
  }

  async remove(app: string): Promise<void> {
    if (!this.#loading && !this.#hasApps(app)) return;
    await (await this.#driver()).remove(app);
  }

  async restart(app: string): Promise<RuntimeAppState> {
    return (await this.#driver()).restart(app);
  }

  async logs(app: string, q: LogQuery): Promise<LogLine[]> {
    return (await this.#driver()).logs(app, q);
  }

  async *followLogs(app: string, q: LogQuery): AsyncIterable<LogLine> {
    yield* (await this.#driver()).followLogs(app, q);
  }

  async metrics(app: string) {
    if (!this.#loading && !this.#hasApps(app)) return null;
    const d = await this.#driver();
    return d.metrics ? d.metrics(app) : null;
  }

  /** The image builder on the same engine client (loads the runtime). */
  async builder(): Promise<DockerBuilder> {
    await this.#driver();
    return (await (this.#loading as Promise<DockerRuntime>)).builder;
  }

  async #driver() {
    if (!this.#loading) {
      this.#loading = import('./docker-runtime.ts')
        .then((m) => m.createDockerRuntime(this.#config, this.#opts))
        .then((rt) => {
          if (!rt) {
            throw new MinipaasError(
              'MINIPAAS_ERR_DOCKER_UNAVAILABLE',
              `no Docker engine answers at ${this.#config.docker.socket}`,
            );
          }
          if (this.#opts.supervise && !this.#stopped) rt.driver.start();
          return rt;
        });
      // A failed load (engine went away) is retried by the next call rather than cached.
      this.#loading.catch(() => {
        this.#loading = null;
      });
    }
    return (await this.#loading).driver;
  }

  /** Whether the shared state file names any docker app (or `app`). */
  #hasApps(app?: string): boolean {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(readFileSync(this.#stateFile, 'utf8')) as Record<string, unknown>;
    } catch {
      return false;
    }
    if (!raw || typeof raw !== 'object') return false;
    return app === undefined ? Object.keys(raw).length > 0 : Object.hasOwn(raw, app);
  }
}

/**
 * The engine's version over the Engine API socket, or a DOCKER_UNAVAILABLE error: a cheap liveness
 * check that does not load dockerode.
 */
export function engineVersion(socketPath: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const unavailable = (why: string) =>
      reject(
        new MinipaasError(
          'MINIPAAS_ERR_DOCKER_UNAVAILABLE',
          `no Docker engine answers at ${socketPath}: ${why}`,
        ),
      );
    const req = request({ socketPath, path: '/version', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 65_536) body += c;
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return unavailable(`HTTP ${res.statusCode}`);
        try {
          resolve(String((JSON.parse(body) as { Version?: unknown }).Version ?? 'unknown'));
        } catch {
          unavailable('the answer is not JSON');
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => unavailable(err.message));
    req.end();
  });
}

/**
 * Whether the engine has image `ref` (a tag such as `minipaas/web:v3`); false when it has not or the engine
 * does not answer. Plain `node:http`, for minipaasd's release list (can a release still be rolled back to?).
 */
export function imageExists(socketPath: string, ref: string, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { socketPath, path: `/images/${encodeURIComponent(ref)}/json`, method: 'GET', timeout: timeoutMs },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * The docker runtime for minipaasd: a {@link LazyDockerDriver} when the engine answers, null when
 * `docker.enabled` is `auto` and it does not (`on` makes that an error; `off` never offers it).
 */
export async function lazyDockerRuntime(
  config: MinipaasConfig,
  opts: LazyDockerOptions = {},
): Promise<LazyDockerDriver | null> {
  if (config.docker.enabled === 'off') return null;
  try {
    await engineVersion(config.docker.socket);
  } catch (err) {
    if (config.docker.enabled === 'on') throw err;
    return null;
  }
  return new LazyDockerDriver(config, opts);
}
