/**
 * The process builder: runs a detected stack's build steps (dependency installs) in the staged source as
 * the app's unprivileged user, then moves the tree to its immutable release directory.
 */
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MinipaasError, releaseDir } from '@minipaas/core';
import {
  appCacheDir,
  ensureReachable,
  lockTree,
  ownDir,
  prepareReleaseDir,
  type RunAs,
  resolveRunAs,
} from '@minipaas/runtime-process';
import type { AppRow, AppService } from '../services/app-service.ts';
import type { LogWriter } from './deployment-store.ts';
import { runProgram } from './executor.ts';
import type { BuildStep, DetectedStack } from './stack-detector.ts';

/**
 * Variables a build may see from the platform's environment: registry access, proxies, locale, and the
 * package tools' own index/mirror settings (pip, Go, Bundler, npm; see docs/stacks.md).
 */
const BUILD_ENV_PASSTHROUGH =
  /^(PATH|LANG|LC_[A-Z]+|TZ|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy|npm_config_registry|npm_config_cafile|NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|PIP_(INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|NO_INDEX|TRUSTED_HOST|CERT)|GOPROXY|GOPRIVATE|GONOSUMDB|GONOPROXY|GOFLAGS|BUNDLE_MIRROR__[A-Z0-9_]+|BUNDLE_[A-Z0-9_]+__[A-Z0-9_]+)$/;

/** The environment of a dependency install: a few platform variables plus a private cache as HOME. */
export function buildEnv(cache: string, from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(from)) if (v !== undefined && BUILD_ENV_PASSTHROUGH.test(k)) env[k] = v;
  return {
    ...env,
    HOME: cache,
    CI: 'true',
    npm_config_cache: cache,
    npm_config_update_notifier: 'false',
    YARN_CACHE_FOLDER: cache,
  };
}

export interface ProcessBuilderOptions {
  /** MINIPAAS_HOME. */
  home: string;
  apps: AppService;
  /** Fallback build user when the app has no own uid (config `apps.user`). */
  fallbackUser: string | undefined;
}

export interface BuildRun {
  app: AppRow;
  /** The staged source tree (built in place). */
  dir: string;
  detected: DetectedStack;
  log: LogWriter;
  /** Aborts the running step (its whole process tree) on cancel, timeout or shutdown. */
  signal: AbortSignal;
}

export class ProcessBuilder {
  readonly #o: ProcessBuilderOptions;

  constructor(opts: ProcessBuilderOptions) {
    this.#o = opts;
  }

  /** Runs every build step; throws `MINIPAAS_ERR_BUILD_FAILED` when one fails. */
  async build(run: BuildRun): Promise<void> {
    for (const step of run.detected.steps) await this.#step(run, step);
  }

  /**
   * Installs dependencies. App code runs here (install scripts), so it runs like the app itself: as the
   * unprivileged app user when the platform is root, with a minimal environment (never the platform's own).
   */
  async #step(run: BuildRun, step: BuildStep): Promise<void> {
    const { app, dir, log } = run;
    log.push(`-----> Installing dependencies: ${step.program} ${step.args.join(' ')}`);
    const home = this.#o.home;
    const cache = appCacheDir(home, app.name);
    let who: RunAs | null;
    try {
      who = await this.buildUser(app);
      if (who) {
        // The build dir and the app's own cache belong to the app's uid while its install scripts run.
        await privateParent(join(home, 'builds'));
        await ownDir(dir, who);
        await ensureReachable(home, dir, who);
        await privateParent(join(home, 'cache'));
        await ownDir(cache, who);
        await ensureReachable(home, cache, who);
      } else {
        await mkdir(cache, { recursive: true, mode: 0o700 });
      }
    } catch (err) {
      throw new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', (err as Error).message);
    }
    if (who) log.push(`       (as user ${who.user})`);
    let res: Awaited<ReturnType<typeof runProgram>>;
    try {
      res = await runProgram(step.program, step.args, {
        cwd: dir,
        env: { ...buildEnv(cache), ...step.env },
        signal: run.signal,
        onLine: (l) => log.push(`       ${l}`),
        ...(who ? { uid: who.uid, gid: who.gid } : {}),
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new MinipaasError(
        'MINIPAAS_ERR_BUILD_FAILED',
        `cannot run ${step.program}: ${(err as Error).message}`,
      );
    }
    await log.flush();
    if (res.code !== 0) {
      throw new MinipaasError(
        'MINIPAAS_ERR_BUILD_FAILED',
        `${step.program} ${step.args[0]} failed (exit code ${res.code ?? res.signal})`,
      );
    }
  }

  /**
   * Moves the built tree to the immutable release dir of `version`. With a user switch the release is
   * root:appgid and read-only for the app (locked before it moves, so it is never writable in place).
   * Returns the release dir and the stack's env with paths into the staging dir rewritten.
   */
  async publish(
    app: AppRow,
    staging: string,
    version: number,
    detected: DetectedStack,
  ): Promise<{ dir: string; env: Record<string, string> }> {
    const dir = releaseDir(this.#o.home, app.name, version);
    const who = await this.buildUser(app);
    if (who) await lockTree(staging, who.gid);
    await mkdir(join(dir, '..'), { recursive: true, mode: 0o750 });
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
    if (who) {
      await privateParent(join(this.#o.home, 'releases'));
      await prepareReleaseDir(this.#o.home, dir, who);
    }
    // Paths into the build dir (PATH, VIRTUAL_ENV...) now point into the release dir.
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(detected.env)) env[k] = v.replaceAll(staging, dir);
    return { dir, env };
  }

  /** Who builds run as: the app's own user, else the fallback `apps.user` (root platform), else nobody switches. */
  async buildUser(app: AppRow): Promise<RunAs | null> {
    const own = await this.#o.apps.identity.userFor(app);
    if (own) return { user: own.name, uid: own.uid, gid: own.gid };
    return resolveRunAs(this.#o.fallbackUser);
  }
}

/** A root-owned directory holding one entry per app or build: traversable, not listable (0711). */
async function privateParent(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o711 });
  await chmod(dir, 0o711);
}
