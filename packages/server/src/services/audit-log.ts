/**
 * The audit log (docs/security.md): one entry per mutating API request and per login event, with the
 * actor, the credential (token or session id), the action, the target, the request id, the source
 * address, the outcome and the time. The platform only appends: the table's triggers refuse UPDATE and
 * TRUNCATE, and DELETE of any entry younger than the retention the pruning transaction states.
 */
import { type Kysely, sql } from 'kysely';
import type { Database } from '../store/schema.ts';

export type AuditOutcome = 'success' | 'denied' | 'failure';

/** One entry to append. */
export interface AuditEntry {
  action: string;
  outcome: AuditOutcome;
  actorUserId?: string | null | undefined;
  actor?: string | null | undefined;
  tokenId?: string | null | undefined;
  sessionId?: string | null | undefined;
  method?: string | null | undefined;
  path?: string | null | undefined;
  targetType?: string | null | undefined;
  targetId?: string | null | undefined;
  teamId?: string | null | undefined;
  projectId?: string | null | undefined;
  requestId?: string | null | undefined;
  ip?: string | null | undefined;
  statusCode?: number | null | undefined;
  detail?: Record<string, unknown> | undefined;
}

/** An entry as the API shows it. */
export interface AuditView {
  id: string;
  at: string;
  actor: string | null;
  actorUserId: string | null;
  tokenId: string | null;
  sessionId: string | null;
  action: string;
  method: string | null;
  path: string | null;
  targetType: string | null;
  targetId: string | null;
  teamId: string | null;
  projectId: string | null;
  requestId: string | null;
  ip: string | null;
  outcome: string;
  statusCode: number | null;
  detail: unknown;
}

/** Filters of `GET /api/v1/audit` (all optional, combined with AND). */
export interface AuditFilter {
  /** The actor's user id or email/token name. */
  actor?: string | undefined;
  /** An action, or a prefix ending in `*` (`app:*`). */
  action?: string | undefined;
  outcome?: AuditOutcome | undefined;
  teamId?: string | undefined;
  projectId?: string | undefined;
  targetId?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Only entries with a larger id (following the log). */
  afterId?: number | undefined;
  /** Only entries with a smaller id (paging back). */
  beforeId?: number | undefined;
  /** At most this many, newest first (oldest first with afterId). Default 100, max 1000. */
  limit?: number | undefined;
}

const clip = (v: string | null | undefined, n: number): string | null =>
  v === null || v === undefined ? null : v.slice(0, n);

export class AuditLog {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async record(e: AuditEntry): Promise<void> {
    await this.#db
      .insertInto('audit_log')
      .values({
        action: e.action.slice(0, 100),
        outcome: e.outcome,
        actor_user_id: clip(e.actorUserId, 100),
        actor: clip(e.actor, 320),
        token_id: clip(e.tokenId, 100),
        session_id: clip(e.sessionId, 100),
        method: clip(e.method, 10),
        path: clip(e.path, 2048),
        target_type: clip(e.targetType, 40),
        target_id: clip(e.targetId, 200),
        team_id: clip(e.teamId, 100),
        project_id: clip(e.projectId, 100),
        request_id: clip(e.requestId, 100),
        ip: clip(e.ip, 100),
        status_code: e.statusCode ?? null,
        detail: e.detail ? JSON.stringify(e.detail) : null,
      })
      .execute();
  }

  async list(f: AuditFilter = {}): Promise<AuditView[]> {
    const limit = Math.min(Math.max(f.limit ?? 100, 1), 1000);
    let q = this.#db.selectFrom('audit_log').selectAll();
    if (f.actor) {
      const actor = f.actor;
      q = q.where((eb) => eb.or([eb('actor_user_id', '=', actor), eb('actor', '=', actor)]));
    }
    if (f.action) {
      q = f.action.endsWith('*')
        ? q.where('action', 'like', `${f.action.slice(0, -1).replace(/[\\%_]/g, '\\$&')}%`)
        : q.where('action', '=', f.action);
    }
    if (f.outcome) q = q.where('outcome', '=', f.outcome);
    if (f.teamId) q = q.where('team_id', '=', f.teamId);
    if (f.projectId) q = q.where('project_id', '=', f.projectId);
    if (f.targetId) q = q.where('target_id', '=', f.targetId);
    if (f.since) q = q.where('at', '>=', f.since);
    if (f.until) q = q.where('at', '<', f.until);
    if (f.beforeId !== undefined) q = q.where('id', '<', f.beforeId);
    if (f.afterId !== undefined) q = q.where('id', '>', f.afterId).orderBy('id', 'asc');
    else q = q.orderBy('id', 'desc');
    const rows = await q.limit(limit).execute();
    return rows.map((r) => ({
      id: String(r.id),
      at: new Date(r.at).toISOString(),
      actor: r.actor,
      actorUserId: r.actor_user_id,
      tokenId: r.token_id,
      sessionId: r.session_id,
      action: r.action,
      method: r.method,
      path: r.path,
      targetType: r.target_type,
      targetId: r.target_id,
      teamId: r.team_id,
      projectId: r.project_id,
      requestId: r.request_id,
      ip: r.ip,
      outcome: r.outcome,
      statusCode: r.status_code,
      detail: r.detail,
    }));
  }

  /** The newest entry's id (0 when empty): where following starts. */
  async lastId(): Promise<number> {
    const row = await this.#db
      .selectFrom('audit_log')
      .select((eb) => eb.fn.max('id').as('id'))
      .executeTakeFirst();
    return Number(row?.id ?? 0);
  }

  /** Deletes entries older than `retentionDays` (the only delete the table lets through). */
  async prune(retentionDays: number): Promise<number> {
    const days = Math.max(1, Math.floor(retentionDays));
    return this.#db.transaction().execute(async (trx) => {
      await sql`SELECT set_config('minipaas.audit_retention_days', ${String(days)}, true)`.execute(trx);
      const r = await trx
        .deleteFrom('audit_log')
        .where('at', '<', sql<Date>`now() - make_interval(days => ${days})`)
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }
}

/**
 * Prunes entries past `retentionDays` now and then every `everyMs` (default 6 hours). Returns stop.
 */
export function schedulePruning(
  audit: AuditLog,
  retentionDays: number,
  onError: (err: Error) => void,
  everyMs = 6 * 3600_000,
): () => void {
  const run = () => void audit.prune(retentionDays).catch((err: unknown) => onError(err as Error));
  run();
  const timer = setInterval(run, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
