/**
 * The deployment rows: views (with the queue position), status changes along the state machine
 * (deployment-status.ts) and the log. Every change is announced with NOTIFY on {@link DEPLOYMENT_CHANNEL}
 * (payload: the deployment id) and to the local {@link DeploymentFeed}, so followers in any process see it.
 */
import type { DeploymentStatus, DeploymentView } from '@minipaas/core';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { Database, DeploymentsTable } from '../store/schema.ts';
import type { DeploymentFeed } from './deployment-feed.ts';
import { allowedFrom, isTerminal } from './deployment-status.ts';

export type DeploymentRow = Selectable<DeploymentsTable>;

/** The NOTIFY channel of deployment changes (payload: the deployment id). */
export const DEPLOYMENT_CHANNEL = 'minipaas_deployments';

export function deploymentView(
  d: DeploymentRow,
  appName: string,
  position: number | null = null,
): DeploymentView {
  const iso = (v: Date | string | null) => (v ? new Date(v).toISOString() : null);
  return {
    id: d.id,
    appId: d.app_id,
    appName,
    release: d.release_version,
    status: d.status as DeploymentStatus,
    kind: d.kind,
    source: d.source,
    message: d.message,
    error: d.error,
    log: d.log,
    position: d.status === 'queued' ? position : null,
    attempts: d.attempts,
    cancelRequested: d.cancel_requested && !isTerminal(d.status),
    supersededBy: d.superseded_by,
    rollbackTo: d.rollback_to,
    commit: d.commit_sha ? { sha: d.commit_sha, message: d.commit_message } : null,
    createdAt: new Date(d.created_at).toISOString(),
    startedAt: iso(d.started_at),
    finishedAt: iso(d.finished_at),
  };
}

export interface TransitionExtra {
  error?: string | null;
  release?: number;
  superseded_by?: string;
  attempts?: number;
}

export class DeploymentStore {
  readonly #db: Kysely<Database>;
  readonly #feed: DeploymentFeed;

  constructor(db: Kysely<Database>, feed: DeploymentFeed) {
    this.#db = db;
    this.#feed = feed;
  }

  get db(): Kysely<Database> {
    return this.#db;
  }

  async row(id: string): Promise<DeploymentRow | undefined> {
    return this.#db.selectFrom('deployments').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** 1-based place among all queued deployments (oldest first), or null when not queued. */
  async position(row: Pick<DeploymentRow, 'id' | 'status' | 'created_at'>): Promise<number | null> {
    if (row.status !== 'queued') return null;
    // Compared with the row's own stored created_at (microseconds): a JS Date would cut it to milliseconds
    // and deployments queued within the same millisecond would share a position.
    const r = await sql<{ n: number }>`SELECT count(*)::int AS n FROM deployments d, deployments me
      WHERE me.id = ${row.id} AND d.status = 'queued' AND (d.created_at, d.id) < (me.created_at, me.id)`.execute(
      this.#db,
    );
    return (r.rows[0]?.n ?? 0) + 1;
  }

  /** Positions of every queued deployment. */
  async positions(): Promise<Map<string, number>> {
    const rows = await this.#db
      .selectFrom('deployments')
      .select('id')
      .where('status', '=', 'queued')
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return new Map(rows.map((r, i) => [r.id, i + 1]));
  }

  async view(id: string): Promise<DeploymentView | null> {
    const row = await this.#db
      .selectFrom('deployments')
      .innerJoin('apps', 'apps.id', 'deployments.app_id')
      .selectAll('deployments')
      .select('apps.name as app_name')
      .where('deployments.id', '=', id)
      .executeTakeFirst();
    if (!row) return null;
    return deploymentView(row, row.app_name, await this.position(row));
  }

  /** The app's deployments, newest first. */
  async list(
    app: { id: string; name: string },
    limit = 50,
    statuses?: DeploymentStatus[],
  ): Promise<DeploymentView[]> {
    let q = this.#db.selectFrom('deployments').selectAll().where('app_id', '=', app.id);
    if (statuses) q = q.where('status', 'in', statuses);
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    const positions = rows.some((r) => r.status === 'queued') ? await this.positions() : new Map();
    return rows.map((r) => deploymentView(r, app.name, positions.get(r.id) ?? null));
  }

  /** Log lines from `offset` on, with the status (what a follower reads after a notification). */
  async since(
    id: string,
    offset: number,
  ): Promise<{ lines: string[]; row: DeploymentRow & { app_name: string } } | null> {
    const row = await this.#db
      .selectFrom('deployments')
      .innerJoin('apps', 'apps.id', 'deployments.app_id')
      .selectAll('deployments')
      .select('apps.name as app_name')
      .where('deployments.id', '=', id)
      .executeTakeFirst();
    if (!row) return null;
    return { lines: row.log.slice(offset), row };
  }

  /** Appends log lines (one statement) and announces the change. */
  async append(id: string, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    await sql`WITH u AS (UPDATE deployments SET log = log || ${JSON.stringify(lines)}::jsonb WHERE id = ${id} RETURNING id)
      SELECT pg_notify(${DEPLOYMENT_CHANNEL}, u.id) FROM u`.execute(this.#db);
    this.#feed.changed(id);
  }

  /**
   * Moves a deployment to `to` if the state machine allows it from its current status (checked in the
   * UPDATE itself, so two processes never both win). Returns the updated row, or undefined.
   */
  async transition(
    id: string,
    to: DeploymentStatus,
    extra: TransitionExtra = {},
    from: DeploymentStatus[] = allowedFrom(to),
  ): Promise<DeploymentRow | undefined> {
    const now = new Date();
    const row = await this.#db
      .updateTable('deployments')
      .set((eb) => ({
        status: to,
        ...(isTerminal(to) && to !== 'stopped' ? { finished_at: now } : {}),
        ...(to === 'building' || to === 'deploying'
          ? { started_at: eb.fn.coalesce('started_at', eb.val(now)) as never }
          : {}),
        ...(to === 'queued' ? { finished_at: null } : {}),
        ...(extra.error !== undefined ? { error: extra.error } : {}),
        ...(extra.release !== undefined ? { release_version: extra.release } : {}),
        ...(extra.superseded_by !== undefined ? { superseded_by: extra.superseded_by } : {}),
        ...(extra.attempts !== undefined ? { attempts: extra.attempts } : {}),
      }))
      .where('id', '=', id)
      .where('status', 'in', from)
      .returningAll()
      .executeTakeFirst();
    if (row) await this.notify(id);
    return row;
  }

  async setRelease(id: string, version: number): Promise<void> {
    await this.#db
      .updateTable('deployments')
      .set({ release_version: version })
      .where('id', '=', id)
      .execute();
    await this.notify(id);
  }

  /** Asks the build worker to stop a deployment it runs; false when it is not building or deploying. */
  async requestCancel(id: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('deployments')
      .set({ cancel_requested: true })
      .where('id', '=', id)
      .where('status', 'in', ['building', 'deploying'])
      .executeTakeFirst();
    await this.notify(id);
    return Number(r.numUpdatedRows) > 0;
  }

  /** Of `ids`, those whose cancel was asked for. */
  async cancelRequested(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.#db
      .selectFrom('deployments')
      .select('id')
      .where('id', 'in', ids)
      .where('cancel_requested', '=', true)
      .execute();
    return rows.map((r) => r.id);
  }

  async notify(id: string): Promise<void> {
    await sql`SELECT pg_notify(${DEPLOYMENT_CHANNEL}, ${id})`.execute(this.#db);
    this.#feed.changed(id);
  }
}

/**
 * Buffers a deployment's log lines and writes them in order, one statement per batch (a build printing
 * thousands of lines does not make thousands of round trips).
 */
export class LogWriter {
  readonly #store: DeploymentStore;
  readonly #id: string;
  #buffer: string[] = [];
  #writing: Promise<void> = Promise.resolve();
  #scheduled = false;
  #error: unknown;

  constructor(store: DeploymentStore, id: string) {
    this.#store = store;
    this.#id = id;
  }

  /** Queues a line; written with the next batch. */
  push(line: string): void {
    this.#buffer.push(line);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#writing = this.#writing.then(() => {
      this.#scheduled = false;
      const batch = this.#buffer;
      this.#buffer = [];
      return this.#store.append(this.#id, batch).catch((err: unknown) => {
        this.#error ??= err;
      });
    });
  }

  /** Writes one line and waits until everything before it is stored. */
  async say(line: string): Promise<void> {
    this.push(line);
    await this.flush();
  }

  async flush(): Promise<void> {
    await this.#writing;
    if (this.#buffer.length > 0) await this.flush();
    if (this.#error) {
      const err = this.#error;
      this.#error = undefined;
      throw err;
    }
  }
}
