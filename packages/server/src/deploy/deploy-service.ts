/**
 * The deploy facade the routes use: queue a deployment (its source staged and validated synchronously,
 * so bad input is a 4xx), read deployments with their queue position, cancel, and follow one live.
 * The work itself happens in the build worker (build-worker.ts), usually in its own process.
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import {
  type DeploymentStatus,
  type DeploymentView,
  type MinipaasConfig,
  MinipaasError,
} from '@minipaas/core';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AppRow, AppService } from '../services/app-service.ts';
import type { Database } from '../store/schema.ts';
import { buildQueue } from './build-queue.ts';
import type { DeploymentFeed } from './deployment-feed.ts';
import { markStopped } from './deployment-runner.ts';
import { isTerminal } from './deployment-status.ts';
import { type DeploymentRow, type DeploymentStore, deploymentView } from './deployment-store.ts';
import { kyselyExecutor } from './kysely-executor.ts';
import { type DeploySource, type StagedSource, stageSource } from './source-stage.ts';

export { deploymentView } from './deployment-store.ts';
export type { DeploySource } from './source-stage.ts';
export type { DeploymentRow };

export interface DeployServiceDeps {
  db: Kysely<Database>;
  config: MinipaasConfig;
  apps: AppService;
  deployments: DeploymentStore;
  feed: DeploymentFeed;
  log: Logger;
  /** Node binary used to run the built-in static server (stack detection). */
  nodeBin?: string;
  /** Called after a deployment is queued or a cancel asked for (an in-process worker looks at once). */
  onQueued?: () => void;
}

/** What a follower receives: log lines, status changes (with the queue position), the final view. */
export interface DeploymentSink {
  log(line: string): void;
  status(s: { status: DeploymentStatus; position: number | null }): void;
  end(view: DeploymentView): void;
}

/** Followers re-read the deployment this often even without a notification (a missed NOTIFY costs no more). */
const FOLLOW_SAFETY_POLL_MS = 2000;
/** How long `cancel` waits for the worker to stop a running deployment before answering. */
const CANCEL_WAIT_MS = 30_000;

export class DeployService {
  readonly #d: DeployServiceDeps;
  #closed = false;

  constructor(deps: DeployServiceDeps) {
    this.#d = deps;
  }

  async get(id: string): Promise<DeploymentView> {
    const view = await this.#d.deployments.view(id);
    if (!view) throw new MinipaasError('MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND', `deployment "${id}" not found`);
    return view;
  }

  async list(app: AppRow, limit = 50, statuses?: DeploymentStatus[]): Promise<DeploymentView[]> {
    return this.#d.deployments.list(app, limit, statuses);
  }

  /** Validates the source, stages it and queues the deployment. Returns the queued deployment. */
  async deploy(app: AppRow, source: DeploySource, message?: string): Promise<DeploymentView> {
    if (this.#closed) throw new MinipaasError('MINIPAAS_ERR_CONFLICT', 'control plane is shutting down');
    const id = randomUUID();
    let staged: StagedSource | null = null;
    if (source.kind === 'restart') {
      if (!app.current_release)
        throw new MinipaasError(
          'MINIPAAS_ERR_NO_RELEASE',
          `app "${app.name}" has no release to restart; deploy it first`,
        );
    } else {
      staged = await stageSource(app, id, source, {
        home: this.#d.config.home,
        uploads: this.#d.config.uploads,
        apps: this.#d.apps,
        nodeBin: this.#d.nodeBin ?? process.execPath,
      });
    }
    try {
      return await this.#enqueue(app, {
        id,
        kind: source.kind === 'restart' ? 'restart' : 'build',
        source: source.kind,
        message: message ?? null,
        source_dir: staged?.dir ?? null,
        command: staged?.command ?? null,
        rollback_to: null,
        ...(staged?.commit ? { commit_sha: staged.commit.sha, commit_message: staged.commit.message } : {}),
      });
    } catch (err) {
      if (staged) await rm(staged.dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Queues a rollback to release `version`: no build; the worker records the new release (a copy of the
   * old one's artifact and config) and rolls it out.
   */
  async rollback(app: AppRow, version: number, message?: string): Promise<DeploymentView> {
    if (this.#closed) throw new MinipaasError('MINIPAAS_ERR_CONFLICT', 'control plane is shutting down');
    const release = await this.#d.db
      .selectFrom('releases')
      .select('version')
      .where('app_id', '=', app.id)
      .where('version', '=', version)
      .executeTakeFirst();
    if (!release)
      throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `app "${app.name}" has no release v${version}`);
    return this.#enqueue(app, {
      id: randomUUID(),
      kind: 'rollback',
      source: 'rollback',
      message: message ?? `rollback to v${version}`,
      source_dir: null,
      command: null,
      rollback_to: version,
    });
  }

  /**
   * Inserts the deployment, supersedes the app's earlier still-queued builds (a build coalesces them)
   * and enqueues its job, in one transaction.
   */
  async #enqueue(
    app: AppRow,
    d: {
      id: string;
      kind: 'build' | 'restart' | 'rollback';
      source: string;
      message: string | null;
      source_dir: string | null;
      command: string | null;
      rollback_to: number | null;
      commit_sha?: string;
      commit_message?: string;
    },
  ): Promise<DeploymentView> {
    const { row, superseded } = await this.#d.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('deployments')
        .values({ ...d, app_id: app.id, status: 'queued', log: '[]' })
        .execute();
      const superseded =
        d.kind === 'build'
          ? await trx
              .updateTable('deployments')
              .set({
                status: 'cancelled',
                superseded_by: d.id,
                error: `superseded by a later deploy (${d.id})`,
                finished_at: new Date(),
              })
              .where('app_id', '=', app.id)
              .where('kind', '=', 'build')
              .where('status', '=', 'queued')
              .where('id', '!=', d.id)
              .returning(['id', 'source_dir'])
              .execute()
          : [];
      const job = await buildQueue(kyselyExecutor(trx)).enqueue({ deploymentId: d.id });
      const row = await trx
        .updateTable('deployments')
        .set({ job_id: job.id })
        .where('id', '=', d.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return { row, superseded };
    });
    for (const s of superseded) {
      if (s.source_dir) await rm(s.source_dir, { recursive: true, force: true }).catch(() => undefined);
      await this.#d.deployments.append(s.id, [
        `-----> Superseded by deployment ${d.id} (a later deploy of ${app.name})`,
      ]);
    }
    await this.#d.deployments.notify(row.id);
    this.#d.onQueued?.();
    return deploymentView(row, app.name, await this.#d.deployments.position(row));
  }

  /**
   * Cancels a deployment: a queued one at once; a building one by asking the worker, which kills the
   * build's process tree (the previous release keeps serving). Answers with the deployment as it then is
   * (a deployment already switching to its new release finishes). A finished one is a 409.
   */
  async cancel(id: string): Promise<DeploymentView> {
    const { deployments } = this.#d;
    for (;;) {
      const row = await deployments.row(id);
      if (!row) throw new MinipaasError('MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND', `deployment "${id}" not found`);
      if (isTerminal(row.status))
        throw new MinipaasError(
          'MINIPAAS_ERR_DEPLOYMENT_FINISHED',
          `deployment ${id} has already finished (${row.status})`,
        );
      if (row.status === 'queued') {
        const done = await deployments.transition(id, 'cancelled', { error: 'cancelled before it started' }, [
          'queued',
        ]);
        if (!done) continue; // the worker started it meanwhile
        await deployments.append(id, ['-----> Cancelled before it started']);
        if (row.source_dir) await rm(row.source_dir, { recursive: true, force: true }).catch(() => undefined);
        return this.get(id);
      }
      if (!(await deployments.requestCancel(id))) continue;
      this.#d.onQueued?.();
      return this.#waitTerminal(id, CANCEL_WAIT_MS);
    }
  }

  /** Cancels every unfinished deployment of the app and waits for them to stop (before the app is deleted). */
  async cancelAll(app: AppRow): Promise<void> {
    const open = await this.list(app, 1000, ['queued', 'building', 'deploying']);
    await Promise.all(
      open.map((d) =>
        this.cancel(d.id).catch((err: unknown) => {
          if (!(err instanceof MinipaasError && err.code === 'MINIPAAS_ERR_DEPLOYMENT_FINISHED')) throw err;
        }),
      ),
    );
  }

  async #waitTerminal(id: string, timeoutMs: number): Promise<DeploymentView> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    let last: DeploymentView | null = null;
    try {
      await new Promise<void>((resolve) => {
        ac.signal.addEventListener('abort', () => resolve(), { once: true });
        void this.follow(
          id,
          {
            log: () => undefined,
            status: () => undefined,
            end: (v) => {
              last = v;
              resolve();
            },
          },
          ac.signal,
        ).catch(() => resolve());
      });
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
    return last ?? this.get(id);
  }

  /**
   * Streams a deployment to `sink` from its first log line to its end (resolves then, or when `signal`
   * aborts): lines as they are appended, status and queue-position changes, the final view. Works for a
   * deployment run by a worker in another process (its changes arrive as NOTIFYs through the feed).
   */
  async follow(id: string, sink: DeploymentSink, signal: AbortSignal): Promise<void> {
    const { deployments, feed } = this.#d;
    let offset = 0;
    let lastStatus: string | null = null;
    let lastPosition: number | null = null;
    let busy = false;
    let again = false;
    let finished = false;
    let resolveDone: () => void = () => undefined;
    const done = new Promise<void>((r) => {
      resolveDone = r;
    });
    const pump = async (): Promise<void> => {
      if (finished) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        do {
          again = false;
          const s = await deployments.since(id, offset);
          if (!s)
            throw new MinipaasError('MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND', `deployment "${id}" not found`);
          for (const line of s.lines) sink.log(line);
          offset += s.lines.length;
          const position = await deployments.position(s.row);
          if (s.row.status !== lastStatus || position !== lastPosition) {
            lastStatus = s.row.status;
            lastPosition = position;
            sink.status({ status: s.row.status as DeploymentStatus, position });
          }
          if (isTerminal(s.row.status)) {
            finished = true;
            sink.end(deploymentView(s.row, s.row.app_name, null));
            resolveDone();
            return;
          }
        } while (again && !signal.aborted);
      } finally {
        busy = false;
      }
    };
    const kick = () => void pump().catch(() => undefined);
    const unsubscribe = feed.subscribe(id, kick);
    // While queued, the position moves when other deployments start or go.
    const unsubscribeAll = feed.subscribe('*', (other) => {
      if (other !== id && lastStatus === 'queued') kick();
    });
    const poll = setInterval(kick, FOLLOW_SAFETY_POLL_MS);
    const onAbort = () => resolveDone();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await pump();
      await done;
    } finally {
      finished = true;
      clearInterval(poll);
      unsubscribe();
      unsubscribeAll();
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The command of a command deploy (which can be built again), else null. */
  async rebuildableCommand(id: string): Promise<string | null> {
    const row = await this.#d.deployments.row(id);
    return row?.source === 'command' && row.command ? row.command : null;
  }

  /** The deployments that were serving the app, except `keep`, are `stopped` (superseded or app stopped). */
  async markStopped(appId: string, keep?: string): Promise<void> {
    await markStopped(this.#d.deployments, appId, keep);
  }

  /** Refuses new deployments (used on shutdown); queued ones stay queued for the next start. */
  async close(): Promise<void> {
    this.#closed = true;
  }
}
