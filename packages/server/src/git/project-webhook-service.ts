/**
 * Project webhooks (seed 001 §3.8 `/api/webhooks/:projectId/:token`, docs/git.md): one URL per project; a
 * push deploys every app of the project whose git source is the pushed repository and branch. Checked
 * like an app's webhook (token, then signature, constant-time) and logged with the project; a delivery id
 * is accepted once.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type DeploymentView, MinipaasError, type SecretBox } from '@minipaas/core';
import { type ColumnType, type Generated, type Kysely, sql } from 'kysely';
import type { Logger } from 'pino';
import type { AppService } from '../services/app-service.ts';
import type { Database } from '../store/schema.ts';
import { ZERO_SHA } from './git-http.ts';
import { projectWebhookTokenContext } from './git-secrets.ts';
import type { GitService } from './git-service.ts';
import { branchOf } from './git-url.ts';
import {
  type DeliveryResult,
  type DeliveryView,
  deliveryView,
  type Outcome,
  parsePayload,
  providerOf,
  safeEqual,
  verifySignature,
} from './webhook-service.ts';

type Tables = {
  git_project_webhooks: {
    project_id: string;
    token_hash: string;
    token: string;
    enabled: boolean;
    created_at: Date | string;
    updated_at: Date | string;
  };
  git_webhook_deliveries: {
    id: Generated<number | string>;
    app_id: string | null;
    project_id: string | null;
    received_at: ColumnType<Date | string, Date | string | undefined, never>;
    provider: string;
    delivery_id: string | null;
    event: string | null;
    ref: string | null;
    commit_sha: string | null;
    outcome: string;
    reason: string;
    deployment_id: string | null;
  };
  git_sources: { app_id: string; url: string | null; ref: string };
};

const tokenContext = projectWebhookTokenContext;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const KEEP_DELIVERIES = 200;

/** `host/owner/repo` of a repository URL (scheme, credentials, port and `.git` ignored), lowercased. */
export function repositoryKey(url: string): string | null {
  let host: string;
  let path: string;
  const scp = /^(?:[^@/:]+@)?([^:/]+):(?!\/\/)(.+)$/.exec(url);
  if (scp && !url.includes('://')) {
    host = scp[1] as string;
    path = scp[2] as string;
  } else {
    try {
      const u = new URL(url);
      host = u.hostname;
      path = u.pathname;
    } catch {
      return null;
    }
  }
  path = path.replace(/^\/+|\/+$/g, '').replace(/\.git$/, '');
  return host && path ? `${host}/${path}`.toLowerCase() : null;
}

/** Every repository URL a GitHub, Gitea or GitLab push payload names. */
function payloadRepositories(p: Record<string, unknown>): Set<string> {
  const keys = new Set<string>();
  for (const holder of [p.repository, p.project]) {
    if (!holder || typeof holder !== 'object') continue;
    const h = holder as Record<string, unknown>;
    for (const f of [
      'clone_url',
      'ssh_url',
      'git_url',
      'html_url',
      'url',
      'git_http_url',
      'git_ssh_url',
      'web_url',
      'homepage',
    ]) {
      const v = h[f];
      const k = typeof v === 'string' && v.length < 2000 ? repositoryKey(v) : null;
      if (k) keys.add(k);
    }
  }
  return keys;
}

export interface ProjectWebhookView {
  path: string;
  secret: string | null;
  enabled: boolean;
  createdAt: string;
}

export class ProjectWebhookService {
  readonly #db: Kysely<Database & Tables>;
  readonly #d: { db: Kysely<Database>; box: SecretBox; git: GitService; apps: AppService; log: Logger };

  constructor(d: { db: Kysely<Database>; box: SecretBox; git: GitService; apps: AppService; log: Logger }) {
    this.#d = d;
    this.#db = d.db.withTables<Tables>();
  }

  async #row(projectId: string) {
    return this.#db
      .selectFrom('git_project_webhooks')
      .selectAll()
      .where('project_id', '=', projectId)
      .executeTakeFirst();
  }

  async view(projectId: string, reveal: boolean): Promise<ProjectWebhookView> {
    const row = await this.#row(projectId);
    if (!row)
      throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', 'the project has no webhook; create one first');
    const secret = this.#d.box.open(row.token, tokenContext(projectId));
    return {
      path: `/api/webhooks/${projectId}/${reveal ? secret : '••••'}`,
      secret: reveal ? secret : null,
      enabled: row.enabled,
      createdAt: new Date(row.created_at).toISOString(),
    };
  }

  /** Creates the project's webhook, or gives it a new token (`regenerate`). */
  async create(projectId: string, regenerate = false): Promise<void> {
    const token = randomBytes(32).toString('base64url');
    const values = {
      token_hash: sha256(token),
      token: this.#d.box.seal(token, tokenContext(projectId)),
      updated_at: new Date(),
    };
    await this.#db
      .insertInto('git_project_webhooks')
      .values({ project_id: projectId, enabled: true, created_at: new Date(), ...values })
      .onConflict((oc) =>
        regenerate ? oc.column('project_id').doUpdateSet(values) : oc.column('project_id').doNothing(),
      )
      .execute();
  }

  async setEnabled(projectId: string, enabled: boolean): Promise<void> {
    const r = await this.#db
      .updateTable('git_project_webhooks')
      .set({ enabled, updated_at: new Date() })
      .where('project_id', '=', projectId)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0)
      throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', 'the project has no webhook');
  }

  async deliveries(projectId: string, limit = 50): Promise<DeliveryView[]> {
    const rows = await this.#db
      .selectFrom('git_webhook_deliveries')
      .selectAll()
      .where('project_id', '=', projectId)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(deliveryView);
  }

  /** A delivery to `/api/webhooks/{projectId}/{token}` (the project exists). */
  async receive(
    projectId: string,
    token: string,
    headers: Record<string, string | string[] | undefined>,
    raw: Buffer,
  ): Promise<DeliveryResult & { deployments?: DeploymentView[] }> {
    const h = (n: string) => {
      const v = headers[n];
      return (Array.isArray(v) ? v[0] : v)?.slice(0, 500) ?? null;
    };
    const provider = providerOf(headers);
    const event =
      h('x-github-event') ??
      h('x-gitea-event') ??
      h('x-forgejo-event') ??
      h('x-gogs-event') ??
      h('x-gitlab-event');
    const deliveryId =
      h('x-github-delivery') ?? h('x-gitea-delivery') ?? h('x-forgejo-delivery') ?? h('x-gitlab-event-uuid');
    const record = async (
      outcome: Outcome,
      reason: string,
      extra: { ref?: string | null; commit_sha?: string | null } = {},
    ) => {
      const r = await this.#db
        .insertInto('git_webhook_deliveries')
        .values({
          app_id: null,
          project_id: projectId,
          provider: provider ?? 'unknown',
          delivery_id: deliveryId,
          event,
          ref: extra.ref ?? null,
          commit_sha: extra.commit_sha ?? null,
          outcome,
          reason: reason.slice(0, 1000),
          deployment_id: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      await this.#db
        .deleteFrom('git_webhook_deliveries')
        .where('project_id', '=', projectId)
        .where('app_id', 'is', null)
        .where('id', '<=', Number(r.id) - KEEP_DELIVERIES)
        .execute();
      return Number(r.id);
    };
    const done = async (status: number, outcome: Outcome, reason: string, extra = {}) => {
      await record(outcome, reason, extra);
      return { status, outcome, reason };
    };
    const row = await this.#row(projectId);
    if (!row) return done(401, 'rejected', 'the project has no webhook');
    if (!safeEqual(sha256(token), row.token_hash)) return done(401, 'rejected', 'wrong webhook token');
    if (!provider)
      return done(400, 'rejected', 'not a GitHub, GitLab or Gitea/Forgejo delivery (no event header)');
    const signed = verifySignature(
      provider,
      this.#d.box.open(row.token, tokenContext(projectId)),
      headers,
      raw,
    );
    if (signed !== true) return done(401, 'rejected', signed);
    if (!row.enabled) return done(200, 'ignored', 'the webhook is disabled');
    let payload: Record<string, unknown>;
    try {
      payload = parsePayload(raw, h('content-type') ?? '');
    } catch {
      return done(400, 'rejected', 'the payload is not JSON');
    }
    if (event === 'ping') return done(200, 'accepted', 'pong');
    if (provider === 'gitlab' ? event !== 'Push Hook' : event !== 'push')
      return done(200, 'ignored', `event ${event} does not deploy`);
    const ref = typeof payload.ref === 'string' ? payload.ref.slice(0, 300) : null;
    const after =
      typeof payload.after === 'string' && /^[0-9a-f]{40}$/.test(payload.after) ? payload.after : null;
    if (!ref?.startsWith('refs/heads/'))
      return done(200, 'ignored', `${ref ?? 'no ref'} is not a branch`, { ref });
    if (!after || after === ZERO_SHA) return done(200, 'ignored', 'the branch was deleted', { ref });
    const branch = ref.slice('refs/heads/'.length);
    const repos = payloadRepositories(payload);
    const sources = await this.#db
      .selectFrom('git_sources')
      .innerJoin('apps', 'apps.id', 'git_sources.app_id')
      .select(['apps.id', 'apps.name', 'git_sources.url', 'git_sources.ref'])
      .where('apps.project_id', '=', projectId)
      .where('git_sources.url', 'is not', null)
      .orderBy('apps.name')
      .execute();
    const matching = sources.filter((s) => {
      const key = s.url ? repositoryKey(s.url) : null;
      return key !== null && repos.has(key) && (branchOf(s.ref) ?? 'main') === branch;
    });
    if (matching.length === 0)
      return done(
        200,
        'ignored',
        `no app of this project builds ${[...repos][0] ?? 'this repository'} ${branch}`,
        { ref, commit_sha: after },
      );
    // Claim the delivery id (replays and concurrent duplicates find it taken).
    let id: number;
    try {
      id = await record('accepted', 'deploying', { ref, commit_sha: after });
    } catch (err) {
      if ((err as { code?: string }).code === '23505')
        return done(200, 'ignored', 'replayed delivery id', { ref, commit_sha: after });
      throw err;
    }
    const deployments: DeploymentView[] = [];
    const failed: string[] = [];
    for (const s of matching) {
      try {
        deployments.push(await this.#d.git.build(await this.#d.apps.get(s.id), { ref: after }));
      } catch (err) {
        failed.push(`${s.name}: ${(err as Error).message}`);
      }
    }
    const reason = [
      deployments.length
        ? `deploying ${after.slice(0, 7)} to ${deployments.map((d) => d.appName).join(', ')}`
        : '',
      failed.length ? `could not start: ${failed.join('; ')}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    await sql`UPDATE git_webhook_deliveries SET reason = ${reason.slice(0, 1000)}, outcome = ${deployments.length ? 'accepted' : 'rejected'} WHERE id = ${id}`.execute(
      this.#db,
    );
    return {
      status: deployments.length ? 202 : 422,
      outcome: deployments.length ? 'accepted' : 'rejected',
      reason,
      deployments,
    };
  }
}
