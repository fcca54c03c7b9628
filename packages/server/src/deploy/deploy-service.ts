/**
 * The deploy pipeline: source -> build -> release -> rollout on the runtime.
 * Uploads are validated and unpacked into a staging dir synchronously (so bad input is a 4xx),
 * then the build and rollout run in the background, serialised per app, with every step appended
 * to the deployment's log and pushed to live followers.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  type DeploymentStatus,
  type DeploymentView,
  type MinipaasConfig,
  MinipaasError,
  type RuntimeAppState,
  releaseDir,
} from '@minipaas/core';
import {
  appCacheDir,
  ensureReachable,
  lockTree,
  ownDir,
  prepareReleaseDir,
  type RunAs,
  resolveRunAs,
} from '@minipaas/runtime-process';
import type { Kysely, Selectable } from 'kysely';
import type { Logger } from 'pino';
import type { RuntimeRegistry } from '../runtime/runtime-registry.ts';
import type { AppRow, AppService } from '../services/app-service.ts';
import { buildSpec, effectiveProcesses } from '../services/spec-builder.ts';
import type { Database, DeploymentsTable } from '../store/schema.ts';
import { runProgram } from './executor.ts';
import { type BuildStep, type DetectedStack, detectStack } from './stack-detector.ts';
import { stageUpload } from './upload-staging.ts';

export type DeploymentRow = Selectable<DeploymentsTable>;

export interface DeployServiceDeps {
  db: Kysely<Database>;
  config: MinipaasConfig;
  runtimes: RuntimeRegistry;
  apps: AppService;
  log: Logger;
  /** Node binary used to run the built-in static server. */
  nodeBin?: string;
}

export type DeploySource =
  | {
      kind: 'upload';
      /** The request body: a gzipped (or plain) tarball, streamed to disk and unpacked within `uploads.*`. */
      archive: Readable;
      /** Overrides the detected web command. */
      command?: string | undefined;
    }
  | { kind: 'command'; command: string }
  | { kind: 'restart' };

export interface DeploymentEvents {
  log: [line: string];
  status: [status: DeploymentStatus];
  end: [view: DeploymentView];
}

export function deploymentView(d: DeploymentRow, appName: string): DeploymentView {
  const iso = (v: Date | string | null) => (v ? new Date(v).toISOString() : null);
  return {
    id: d.id,
    appId: d.app_id,
    appName,
    release: d.release_version,
    status: d.status as DeploymentStatus,
    source: d.source,
    message: d.message,
    error: d.error,
    log: d.log,
    createdAt: new Date(d.created_at).toISOString(),
    startedAt: iso(d.started_at),
    finishedAt: iso(d.finished_at),
  };
}

const TERMINAL = new Set(['running', 'failed', 'stopped']);

/** Variables a build may see from the platform's environment (registry access, proxies, locale). */
const BUILD_ENV_PASSTHROUGH =
  /^(PATH|LANG|LC_[A-Z]+|TZ|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy|npm_config_registry|npm_config_cafile|NODE_EXTRA_CA_CERTS|SSL_CERT_FILE)$/;

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
/** Rollout polling: fast at first (most apps are healthy within ~100 ms), then every 200 ms. */
const POLL_MIN_MS = 20;
const POLL_MAX_MS = 200;

export class DeployService {
  readonly #d: DeployServiceDeps;
  readonly #chains = new Map<string, Promise<void>>();
  readonly #events = new Map<string, EventEmitter<DeploymentEvents>>();
  readonly #live = new Map<string, { lines: string[]; status: DeploymentStatus }>();
  readonly #inflight = new Set<Promise<void>>();
  #closed = false;

  constructor(deps: DeployServiceDeps) {
    this.#d = deps;
  }

  /**
   * A running deployment's log so far and its live events, or null when it is not running in this
   * process. Read `lines` and subscribe in the same tick: nothing is missed or sent twice.
   */
  live(
    id: string,
  ): { lines: readonly string[]; status: DeploymentStatus; events: EventEmitter<DeploymentEvents> } | null {
    const events = this.#events.get(id);
    const state = this.#live.get(id);
    return events && state ? { lines: state.lines, status: state.status, events } : null;
  }

  async get(id: string): Promise<DeploymentView> {
    const row = await this.#d.db
      .selectFrom('deployments')
      .innerJoin('apps', 'apps.id', 'deployments.app_id')
      .selectAll('deployments')
      .select('apps.name as app_name')
      .where('deployments.id', '=', id)
      .executeTakeFirst();
    if (!row) throw new MinipaasError('MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND', `deployment "${id}" not found`);
    return deploymentView(row, row.app_name);
  }

  async list(app: AppRow, limit = 50): Promise<DeploymentView[]> {
    const rows = await this.#d.db
      .selectFrom('deployments')
      .selectAll()
      .where('app_id', '=', app.id)
      .orderBy('created_at', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => deploymentView(r, app.name));
  }

  /** Validates the source, stages it and queues the build + rollout. Returns the queued deployment. */
  async deploy(app: AppRow, source: DeploySource, message?: string): Promise<DeploymentView> {
    if (this.#closed) throw new MinipaasError('MINIPAAS_ERR_CONFLICT', 'control plane is shutting down');
    const id = randomUUID();
    const staging = join(this.#d.config.home, 'builds', id);
    if (source.kind === 'upload') {
      // Streamed to disk, unpacked by a child process within uploads.*; nothing is left on failure.
      await stageUpload(source.archive, staging, this.#d.config.uploads);
    } else if (source.kind === 'restart' && !app.current_release) {
      throw new MinipaasError(
        'MINIPAAS_ERR_NO_RELEASE',
        `app "${app.name}" has no release to restart; deploy it first`,
      );
    }
    let detected: DetectedStack | null = null;
    if (source.kind === 'upload') {
      try {
        detected = await detectStack(staging, process.env.PATH ?? '', this.#d.nodeBin ?? process.execPath);
        if (source.command) detected.commands.web = source.command;
      } catch (err) {
        const noStack = err instanceof MinipaasError && err.code === 'MINIPAAS_ERR_NO_STACK';
        if (!(noStack && source.command)) {
          await rm(staging, { recursive: true, force: true });
          throw err;
        }
        detected = { stack: 'command', commands: { web: source.command }, steps: [], env: {}, releaseCommand: null };
      }
    } else if (source.kind === 'command') {
      await mkdir(staging, { recursive: true });
      detected = { stack: 'command', commands: { web: source.command }, steps: [], env: {}, releaseCommand: null };
    }
    if (detected) {
      // Over a limit (too many process types or instances): refuse now, before anything is queued.
      try {
        await this.#d.apps.checkLimits(app, effectiveProcesses(app, { commands: detected.commands }));
      } catch (err) {
        await rm(staging, { recursive: true, force: true });
        throw err;
      }
    }
    const row = await this.#d.db
      .insertInto('deployments')
      .values({
        id,
        app_id: app.id,
        status: 'queued',
        source: source.kind,
        message: message ?? null,
        log: '[]',
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const emitter = new EventEmitter<DeploymentEvents>();
    emitter.setMaxListeners(100);
    this.#events.set(id, emitter);
    this.#live.set(id, { lines: [], status: 'queued' });
    const prev = this.#chains.get(app.id) ?? Promise.resolve();
    const job = prev.then(() => this.#run(app.id, id, staging, detected, source.kind === 'restart'));
    const tail = job
      .catch(() => undefined)
      .finally(() => {
        if (this.#chains.get(app.id) === tail) this.#chains.delete(app.id);
      });
    this.#chains.set(app.id, tail);
    this.#inflight.add(tail);
    void tail.finally(() => this.#inflight.delete(tail));
    return deploymentView(row, app.name);
  }

  async #append(id: string, line: string): Promise<void> {
    await this.#d.db
      .updateTable('deployments')
      .set((eb) => ({ log: eb('log', '||', JSON.stringify([line]) as never) as never }))
      .where('id', '=', id)
      .execute();
    this.#live.get(id)?.lines.push(line);
    this.#events.get(id)?.emit('log', line);
  }

  async #status(
    id: string,
    status: DeploymentStatus,
    extra: { error?: string; release?: number } = {},
  ): Promise<void> {
    const now = new Date();
    await this.#d.db
      .updateTable('deployments')
      .set({
        status,
        ...(TERMINAL.has(status) ? { finished_at: now } : {}),
        ...(extra.error !== undefined ? { error: extra.error } : {}),
        ...(extra.release !== undefined ? { release_version: extra.release } : {}),
      })
      .where('id', '=', id)
      .execute();
    if (status === 'building' || status === 'deploying') {
      await this.#d.db
        .updateTable('deployments')
        .set({ started_at: now })
        .where('id', '=', id)
        .where('started_at', 'is', null)
        .execute();
    }
    const live = this.#live.get(id);
    if (live) live.status = status;
    this.#events.get(id)?.emit('status', status);
  }

  async #run(
    appId: string,
    id: string,
    staging: string,
    detected: DetectedStack | null,
    restart: boolean,
  ): Promise<void> {
    const log = this.#d.log.child({ deploymentId: id, appId });
    const say = (line: string) => this.#append(id, line);
    try {
      let app = await this.#d.apps.get(appId);
      let version = app.current_release;
      if (detected) {
        await this.#status(id, 'building');
        await this.#d.apps.setStatus(app.id, 'deploying');
        await say(`-----> Detected stack: ${detected.stack} (${Object.keys(detected.commands).join(', ')})`);
        for (const step of detected.steps) await this.#install(id, app, staging, step);
        version = await this.#release(app, staging, detected);
        await this.#status(id, 'deploying', { release: version });
        await say(`-----> Release v${version} created`);
      } else {
        await this.#status(id, 'deploying', { release: version ?? undefined });
        await say(`-----> Restarting release v${version}`);
      }
      app = await this.#d.apps.get(appId);
      const release = await this.#d.db
        .selectFrom('releases')
        .selectAll()
        .where('app_id', '=', app.id)
        .where('version', '=', version as number)
        .executeTakeFirstOrThrow();
      const spec = buildSpec(
        { ...app, status: 'deploying' },
        release,
        await this.#d.apps.identity.userFor(app),
      );
      await this.#d.apps.checkLimits(app, spec.processes);
      const types = Object.entries(spec.processes).map(([t, p]) => `${t}=${p.instances}`);
      await say(
        `-----> Starting ${types.join(' ') || 'no processes'} (health check: ${spec.healthcheck?.path ?? 'port accepts connections'})`,
      );
      const driver = this.#d.runtimes.forApp(app);
      const state = restart ? await driver.restart(app.name) : await driver.apply(spec);
      const final = await this.#waitRollout(app, spec.release, state);
      if (final.rollout.status === 'failed') {
        for (const l of final.rollout.logTail ?? []) await say(`       ${l}`);
        throw new MinipaasError(
          'MINIPAAS_ERR_BUILD_FAILED',
          final.rollout.error ?? 'instances did not become healthy',
        );
      }
      const running = final.instances.filter((i) => i.status === 'running' && i.release === spec.release);
      for (const i of running)
        await say(`       ${i.processType}.${i.id} pid ${i.pid}${i.port ? ` port ${i.port}` : ''}`);
      await this.#d.apps.setStatus(app.id, 'running', version ?? undefined);
      await this.markStopped(app.id, id);
      await say(`-----> v${version} is live at ${this.#d.apps.urls(app.name).url}`);
      await this.#status(id, 'running');
      await this.#prune(app);
      log.info({ release: version }, 'deployment succeeded');
    } catch (err) {
      const message =
        err instanceof MinipaasError ? err.message : `internal error: ${(err as Error).message}`;
      if (!(err instanceof MinipaasError)) log.error({ err }, 'deployment crashed');
      else log.warn({ err: message }, 'deployment failed');
      await say(`!!!    ${message}`).catch(() => undefined);
      await this.#status(id, 'failed', { error: message }).catch(() => undefined);
      const app = await this.#d.apps.get(appId).catch(() => null);
      if (app)
        await this.#d.apps
          .setStatus(app.id, app.current_release ? 'running' : 'failed')
          .catch(() => undefined);
    } finally {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      const emitter = this.#events.get(id);
      if (emitter) {
        const view = await this.get(id).catch(() => null);
        this.#events.delete(id);
        this.#live.delete(id);
        if (view) emitter.emit('end', view);
      }
    }
  }

  /**
   * Installs dependencies. App code runs here (install scripts), so it runs like the app itself: as the
   * unprivileged app user when the platform is root, with a minimal environment (never the platform's own).
   */
  async #install(id: string, app: AppRow, dir: string, step: BuildStep): Promise<void> {
    await this.#append(id, `-----> Installing dependencies: ${step.program} ${step.args.join(' ')}`);
    const home = this.#d.config.home;
    const cache = appCacheDir(home, app.name);
    let who: RunAs | null;
    try {
      who = await this.#buildUser(app);
      if (who) {
        // The build dir and the app's own cache belong to the app's uid while its install scripts run.
        await this.#privateParent(join(home, 'builds'));
        await ownDir(dir, who);
        await ensureReachable(home, dir, who);
        await this.#privateParent(join(home, 'cache'));
        await ownDir(cache, who);
        await ensureReachable(home, cache, who);
      } else {
        await mkdir(cache, { recursive: true, mode: 0o700 });
      }
    } catch (err) {
      throw new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', (err as Error).message);
    }
    if (who) await this.#append(id, `       (as user ${who.user})`);
    const pending: Promise<void>[] = [];
    let res: Awaited<ReturnType<typeof runProgram>>;
    try {
      res = await runProgram(step.program, step.args, {
        cwd: dir,
        env: { ...buildEnv(cache), ...step.env },
        timeoutMs: 15 * 60_000,
        onLine: (l) => pending.push(this.#append(id, `       ${l}`)),
        ...(who ? { uid: who.uid, gid: who.gid } : {}),
      });
    } catch (err) {
      throw new MinipaasError(
        'MINIPAAS_ERR_BUILD_FAILED',
        `cannot run ${step.program}: ${(err as Error).message}`,
      );
    }
    await Promise.all(pending);
    if (res.code !== 0) {
      throw new MinipaasError(
        'MINIPAAS_ERR_BUILD_FAILED',
        `${step.program} ${step.args[0]} failed (${res.timedOut ? 'timed out' : `exit code ${res.code ?? res.signal}`})`,
      );
    }
  }

  /**
   * Moves the staged build to its immutable release dir and records it. With a user switch the release is
   * root:appgid and read-only for the app (locked before it moves, so it is never writable in place).
   */
  async #release(app: AppRow, staging: string, detected: DetectedStack): Promise<number> {
    const last = await this.#d.db
      .selectFrom('releases')
      .select((eb) => eb.fn.max('version').as('v'))
      .where('app_id', '=', app.id)
      .executeTakeFirst();
    const version = Number(last?.v ?? 0) + 1;
    const dir = releaseDir(this.#d.config.home, app.name, version);
    const who = await this.#buildUser(app);
    if (who) await lockTree(staging, who.gid);
    await mkdir(join(dir, '..'), { recursive: true, mode: 0o750 });
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
    if (who) {
      await this.#privateParent(join(this.#d.config.home, 'releases'));
      await prepareReleaseDir(this.#d.config.home, dir, who);
    }
    const env = { ...detected.env };
    if (env.PATH) env.PATH = env.PATH.replace(staging, dir);
    await this.#d.db
      .insertInto('releases')
      .values({
        id: randomUUID(),
        app_id: app.id,
        version,
        dir,
        stack: detected.stack,
        commands: JSON.stringify(detected.commands),
        env: JSON.stringify(env),
        source: detected.stack === 'command' ? 'command' : 'upload',
        artifact: JSON.stringify({ kind: 'directory', path: dir }),
        config_env: JSON.stringify(app.env),
        formation: JSON.stringify(app.processes),
      })
      .execute();
    return version;
  }

  /** Who builds run as: the app's own user, else the fallback `apps.user` (root platform), else nobody switches. */
  async #buildUser(app: AppRow): Promise<RunAs | null> {
    const own = await this.#d.apps.identity.userFor(app);
    if (own) return { user: own.name, uid: own.uid, gid: own.gid };
    return resolveRunAs(this.#d.config.apps.user);
  }

  /** A root-owned directory holding one entry per app or build: traversable, not listable (0711). */
  async #privateParent(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o711 });
    await chmod(dir, 0o711);
  }

  async #waitRollout(app: AppRow, release: string, initial: RuntimeAppState): Promise<RuntimeAppState> {
    const deadline = Date.now() + this.#d.config.apps.startTimeoutMs + 15_000;
    let state: RuntimeAppState | null = initial;
    let delay = POLL_MIN_MS;
    while (Date.now() < deadline) {
      if (
        state &&
        state.rollout.release === release &&
        (state.rollout.status === 'ready' || state.rollout.status === 'failed')
      ) {
        return state;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(POLL_MAX_MS, delay * 2);
      state = await this.#d.runtimes.forApp(app).get(app.name);
    }
    throw new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', `release ${release} did not become healthy in time`);
  }

  /** Keeps the newest `keepReleases` releases (and always the current one). */
  async #prune(app: AppRow): Promise<void> {
    const fresh = await this.#d.apps.get(app.id);
    const rows = await this.#d.db
      .selectFrom('releases')
      .select(['id', 'version', 'dir'])
      .where('app_id', '=', app.id)
      .orderBy('version', 'desc')
      .execute();
    const keep = this.#d.config.apps.keepReleases;
    for (const r of rows.slice(keep)) {
      if (r.version === fresh.current_release) continue;
      await rm(r.dir, { recursive: true, force: true });
      await this.#d.db.deleteFrom('releases').where('id', '=', r.id).execute();
    }
  }

  /** The deployments that were serving the app, except `keep`, are `stopped` (superseded or app stopped). */
  async markStopped(appId: string, keep?: string): Promise<void> {
    let q = this.#d.db
      .updateTable('deployments')
      .set({ status: 'stopped' })
      .where('app_id', '=', appId)
      .where('status', '=', 'running');
    if (keep) q = q.where('id', '!=', keep);
    await q.execute();
  }

  /** Marks deployments left unfinished by a previous control-plane process. */
  async recoverInterrupted(): Promise<number> {
    const rows = await this.#d.db
      .updateTable('deployments')
      .set({
        status: 'failed',
        error: 'interrupted: the control plane restarted during this deployment',
        finished_at: new Date(),
      })
      .where('status', 'in', ['queued', 'building', 'deploying'])
      .returning('id')
      .execute();
    // Apps whose deployment was cut off go back to what is really there: their last release, or failed.
    await this.#d.db
      .updateTable('apps')
      .set((eb) => ({
        status: eb.case().when('current_release', 'is not', null).then('running').else('failed').end(),
        updated_at: new Date(),
      }))
      .where('status', '=', 'deploying')
      .execute();
    const builds = join(this.#d.config.home, 'builds');
    for (const d of await readdir(builds).catch(() => [] as string[]))
      await rm(join(builds, d), { recursive: true, force: true });
    return rows.length;
  }

  /** Waits for running deployments to finish (used on shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
  }
}
