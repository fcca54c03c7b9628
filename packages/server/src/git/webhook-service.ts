/**
 * Push webhooks (seed 001 §3.8, docs/git.md): one per app at `/api/v1/webhooks/{app}/{token}`, with a
 * random token that is also the signing secret (sealed at rest, found by its SHA-256). Deliveries from
 * GitHub (`X-Hub-Signature-256`: HMAC-SHA256 of the raw body), Gitea/Forgejo (`X-Gitea-Signature`, the
 * same HMAC in hex) and GitLab (`X-Gitlab-Token`: the secret itself) are checked with constant-time
 * comparisons; a push to the webhook's branch builds the pushed commit. Every delivery is logged with its
 * outcome (accepted, ignored, rejected) and why; a delivery id is accepted once (replays are ignored).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { type DeploymentView, MinipaasError, type SecretBox } from '@minipaas/core';
import type { ColumnType, Generated, Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AppRow } from '../services/app-service.ts';
import type { Database } from '../store/schema.ts';
import { ZERO_SHA } from './git-http.ts';
import { webhookTokenContext } from './git-secrets.ts';
import type { GitService } from './git-service.ts';
import { checkGitRef } from './git-url.ts';
import type { PreviewService } from './preview-service.ts';

type WebhookTables = {
  git_webhooks: {
    app_id: string;
    token_hash: string;
    token: string;
    enabled: boolean;
    branch: string | null;
    created_at: Date | string;
    updated_at: Date | string;
  };
  git_webhook_deliveries: {
    id: Generated<number | string>;
    app_id: string;
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
};
type WebhookRow = WebhookTables['git_webhooks'];

export type Provider = 'github' | 'gitea' | 'gitlab';
export type Outcome = 'accepted' | 'ignored' | 'rejected';

/** A webhook as the API shows it: the token (and so the URL) only on request. */
export interface WebhookView {
  path: string;
  secret: string | null;
  enabled: boolean;
  branch: string;
  createdAt: string;
}

export interface DeliveryView {
  id: number;
  receivedAt: string;
  provider: string;
  deliveryId: string | null;
  event: string | null;
  ref: string | null;
  commit: string | null;
  outcome: Outcome;
  reason: string;
  deploymentId: string | null;
}

/** The columns of a `git_webhook_deliveries` row that the API shows (app and project deliveries alike). */
export interface DeliveryRow {
  id: number | string;
  received_at: Date | string;
  provider: string;
  delivery_id: string | null;
  event: string | null;
  ref: string | null;
  commit_sha: string | null;
  outcome: string;
  reason: string;
  deployment_id: string | null;
}

/** A delivery as the API shows it. */
export function deliveryView(r: DeliveryRow): DeliveryView {
  return {
    id: Number(r.id),
    receivedAt: new Date(r.received_at).toISOString(),
    provider: r.provider,
    deliveryId: r.delivery_id,
    event: r.event,
    ref: r.ref,
    commit: r.commit_sha,
    outcome: r.outcome as Outcome,
    reason: r.reason,
    deploymentId: r.deployment_id,
  };
}

/** What the receiver answers: status code and body. */
export interface DeliveryResult {
  status: number;
  outcome: Outcome;
  reason: string;
  deployment?: DeploymentView;
}

/** Deliveries kept per app (older ones are deleted as new ones arrive). */
const KEEP_DELIVERIES = 200;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Constant-time equality of two strings (different lengths compare unequal without a short cut on content). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  if (x.length !== y.length) {
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}

/** Which forge sent a delivery, from its event header. */
export function providerOf(headers: Record<string, string | string[] | undefined>): Provider | null {
  if (headers['x-github-event']) return 'github';
  if (headers['x-gitea-event'] || headers['x-forgejo-event'] || headers['x-gogs-event']) return 'gitea';
  if (headers['x-gitlab-event']) return 'gitlab';
  return null;
}

export interface WebhookServiceDeps {
  db: Kysely<Database>;
  box: SecretBox;
  git: GitService;
  log: Logger;
  /** Preview environments: pushes to other branches and pull requests of apps with previews. */
  previews?: PreviewService;
}

export class WebhookService {
  readonly #db: Kysely<Database & WebhookTables>;
  readonly #d: WebhookServiceDeps;

  constructor(deps: WebhookServiceDeps) {
    this.#d = deps;
    this.#db = deps.db.withTables<WebhookTables>();
  }

  async #row(app: Pick<AppRow, 'id'>): Promise<WebhookRow | undefined> {
    return this.#db.selectFrom('git_webhooks').selectAll().where('app_id', '=', app.id).executeTakeFirst();
  }

  async view(app: AppRow, reveal: boolean): Promise<WebhookView> {
    const row = await this.#row(app);
    if (!row)
      throw new MinipaasError(
        'MINIPAAS_ERR_NOT_FOUND',
        `"${app.name}" has no webhook; create one with minipaas webhooks ${app.name} --create`,
      );
    const secret = this.#d.box.open(row.token, webhookTokenContext(app.id));
    return {
      path: `/api/v1/webhooks/${app.name}/${reveal ? secret : '••••'}`,
      secret: reveal ? secret : null,
      enabled: row.enabled,
      branch: row.branch ?? (await this.#d.git.deployBranch(app)),
      createdAt: new Date(row.created_at).toISOString(),
    };
  }

  /** Creates the app's webhook (a no-op when it exists). */
  async create(app: AppRow, branch?: string): Promise<void> {
    const token = randomBytes(32).toString('base64url');
    await this.#db
      .insertInto('git_webhooks')
      .values({
        app_id: app.id,
        token_hash: sha256(token),
        token: this.#d.box.seal(token, webhookTokenContext(app.id)),
        enabled: true,
        branch: branch ? checkGitRef(branch) : null,
        created_at: new Date(),
        updated_at: new Date(),
      })
      .onConflict((oc) => oc.column('app_id').doNothing())
      .execute();
  }

  /** A new token (the old URL and secret stop working at once). */
  async regenerate(app: AppRow): Promise<void> {
    await this.#existing(app);
    const token = randomBytes(32).toString('base64url');
    await this.#db
      .updateTable('git_webhooks')
      .set({
        token_hash: sha256(token),
        token: this.#d.box.seal(token, webhookTokenContext(app.id)),
        updated_at: new Date(),
      })
      .where('app_id', '=', app.id)
      .execute();
  }

  async update(app: AppRow, s: { enabled?: boolean; branch?: string | null }): Promise<void> {
    await this.#existing(app);
    await this.#db
      .updateTable('git_webhooks')
      .set({
        ...(s.enabled !== undefined ? { enabled: s.enabled } : {}),
        ...(s.branch !== undefined ? { branch: s.branch === null ? null : checkGitRef(s.branch) } : {}),
        updated_at: new Date(),
      })
      .where('app_id', '=', app.id)
      .execute();
  }

  async remove(app: AppRow): Promise<void> {
    await this.#existing(app);
    await this.#db.deleteFrom('git_webhooks').where('app_id', '=', app.id).execute();
  }

  async #existing(app: AppRow): Promise<WebhookRow> {
    const row = await this.#row(app);
    if (!row) throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `"${app.name}" has no webhook`);
    return row;
  }

  async deliveries(app: Pick<AppRow, 'id'>, limit = 50): Promise<DeliveryView[]> {
    const rows = await this.#db
      .selectFrom('git_webhook_deliveries')
      .selectAll()
      .where('app_id', '=', app.id)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(deliveryView);
  }

  /**
   * Handles a delivery to `/api/v1/webhooks/{app}/{token}`. Authentication (token, then signature) comes
   * before anything else is looked at; every outcome is logged for the app.
   */
  async receive(
    app: AppRow,
    token: string,
    headers: Record<string, string | string[] | undefined>,
    raw: Buffer,
  ): Promise<DeliveryResult> {
    const h = (name: string) => {
      const v = headers[name];
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
      h('x-github-delivery') ??
      h('x-gitea-delivery') ??
      h('x-forgejo-delivery') ??
      h('x-gogs-delivery') ??
      h('x-gitlab-event-uuid') ??
      h('idempotency-key');
    const base = { provider: provider ?? 'unknown', delivery_id: deliveryId, event };
    const record = async (
      outcome: Outcome,
      reason: string,
      extra: { ref?: string | null; commit_sha?: string | null; deployment_id?: string | null } = {},
    ): Promise<number> => {
      const r = await this.#db
        .insertInto('git_webhook_deliveries')
        .values({
          app_id: app.id,
          ...base,
          ref: null,
          commit_sha: null,
          deployment_id: null,
          ...extra,
          outcome,
          reason,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      await this.#db
        .deleteFrom('git_webhook_deliveries')
        .where('app_id', '=', app.id)
        .where('id', '<=', Number(r.id) - KEEP_DELIVERIES)
        .execute();
      return Number(r.id);
    };
    const reject = async (status: number, reason: string): Promise<DeliveryResult> => {
      await record('rejected', reason);
      this.#d.log.warn({ app: app.name, provider: base.provider, reason }, 'webhook delivery rejected');
      return { status, outcome: 'rejected', reason };
    };
    const ignore = async (
      reason: string,
      extra: { ref?: string | null; commit_sha?: string | null } = {},
    ) => {
      await record('ignored', reason, extra);
      return { status: 200, outcome: 'ignored' as const, reason };
    };

    const row = await this.#row(app);
    if (!row) return reject(401, 'the app has no webhook');
    if (!safeEqual(sha256(token), row.token_hash)) return reject(401, 'wrong webhook token');
    if (!provider) return reject(400, 'not a GitHub, GitLab or Gitea/Forgejo delivery (no event header)');
    const secret = this.#d.box.open(row.token, webhookTokenContext(app.id));
    const signed = verifySignature(provider, secret, headers, raw);
    if (signed !== true) return reject(401, signed);
    if (!row.enabled) return ignore('the webhook is disabled');

    let payload: Record<string, unknown>;
    try {
      payload = parsePayload(raw, h('content-type') ?? '');
    } catch {
      return reject(400, 'the payload is not JSON');
    }
    if (event === 'ping' || (provider === 'gitlab' && event === 'System Hook')) {
      await record('accepted', 'ping');
      return { status: 200, outcome: 'accepted', reason: 'pong' };
    }
    const previews = this.#d.previews && (await this.#d.previews.enabled(app)) ? this.#d.previews : null;
    const pr = pullRequestOf(provider, event, payload);
    if (pr) {
      if (!previews) return ignore('pull requests deploy previews, which are off for this app');
      const ref = `refs/heads/${pr.branch}`;
      if (pr.action === 'close') {
        await previews.destroy(app, pr.branch);
        const reason = `pull request #${pr.number} closed: preview destroyed`;
        await record('accepted', reason, { ref });
        return { status: 200, outcome: 'accepted', reason };
      }
      if (pr.action === 'ignore' || !pr.sha)
        return ignore(`pull request #${pr.number}: nothing to deploy`, { ref });
      const sha = pr.sha;
      return this.#deploy(record, ignore, { ref, commit_sha: sha }, () =>
        previews.deployFromUrl(app, pr.branch, sha, pr.number),
      );
    }
    const isPush = provider === 'gitlab' ? event === 'Push Hook' : event === 'push';
    if (!isPush) return ignore(`event ${event} does not deploy`);
    const ref = typeof payload.ref === 'string' ? payload.ref.slice(0, 300) : null;
    const after =
      typeof payload.after === 'string' && /^[0-9a-f]{40}$/.test(payload.after) ? payload.after : null;
    const branch = row.branch ?? (await this.#d.git.deployBranch(app));
    if (!ref?.startsWith('refs/heads/')) return ignore(`${ref ?? 'no ref'} is not a branch`, { ref });
    const pushed = ref.slice('refs/heads/'.length);
    if (after === null || after === ZERO_SHA || payload.deleted === true) {
      if (previews && pushed !== branch) {
        await previews.destroy(app, pushed);
        const reason = `branch ${pushed} deleted: preview destroyed`;
        await record('accepted', reason, { ref });
        return { status: 200, outcome: 'accepted', reason };
      }
      return ignore('the branch was deleted', { ref });
    }
    if (ref !== `refs/heads/${branch}`) {
      if (previews)
        return this.#deploy(record, ignore, { ref, commit_sha: after }, () =>
          previews.deployFromUrl(app, pushed, after),
        );
      return ignore(`branch ${pushed} is not ${branch}`, { ref, commit_sha: after });
    }
    return this.#deploy(record, ignore, { ref, commit_sha: after }, () =>
      this.#d.git.build(app, { ref: after }),
    );
  }

  /**
   * Claims the delivery id (a replay, or a concurrent duplicate, finds it taken), then starts the
   * deployment and records it; a deployment that cannot start turns the entry into `rejected`.
   */
  async #deploy(
    record: (
      outcome: Outcome,
      reason: string,
      extra?: { ref?: string | null; commit_sha?: string | null; deployment_id?: string | null },
    ) => Promise<number>,
    ignore: (
      reason: string,
      extra?: { ref?: string | null; commit_sha?: string | null },
    ) => Promise<DeliveryResult>,
    at: { ref: string; commit_sha: string },
    start: () => Promise<DeploymentView>,
  ): Promise<DeliveryResult> {
    let id: number;
    try {
      id = await record('accepted', 'deploying', at);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') return ignore('replayed delivery id', at);
      throw err;
    }
    try {
      const deployment = await start();
      const reason = `deploying ${at.commit_sha.slice(0, 7)} to ${deployment.appName}`;
      await this.#db
        .updateTable('git_webhook_deliveries')
        .set({ reason, deployment_id: deployment.id })
        .where('id', '=', id)
        .execute();
      return { status: 202, outcome: 'accepted', reason, deployment };
    } catch (err) {
      const reason = `the deploy could not start: ${(err as Error).message}`.slice(0, 1000);
      await this.#db
        .updateTable('git_webhook_deliveries')
        .set({ outcome: 'rejected', reason })
        .where('id', '=', id)
        .execute();
      return { status: err instanceof MinipaasError ? 422 : 500, outcome: 'rejected', reason };
    }
  }
}

/**
 * A pull-request (GitHub, Gitea) or merge-request (GitLab) delivery: its number, source branch, head
 * commit and what it means for a preview; null for other events.
 */
export function pullRequestOf(
  provider: Provider,
  event: string | null,
  p: Record<string, unknown>,
): { number: number; branch: string; sha: string | null; action: 'deploy' | 'close' | 'ignore' } | null {
  const obj = (v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  const str = (v: unknown) => (typeof v === 'string' && v.length <= 255 ? v : null);
  const sha = (v: unknown) => (typeof v === 'string' && /^[0-9a-f]{40}$/.test(v) ? v : null);
  if (provider === 'gitlab') {
    if (event !== 'Merge Request Hook') return null;
    const a = obj(p.object_attributes);
    const act = str(a.action);
    const branch = str(a.source_branch);
    const action =
      act === 'close' || act === 'merge'
        ? 'close'
        : ['open', 'reopen', 'update'].includes(act ?? '')
          ? 'deploy'
          : 'ignore';
    return typeof a.iid === 'number' && branch
      ? { number: a.iid, branch, sha: sha(obj(a.last_commit).id), action }
      : null;
  }
  if (event !== 'pull_request') return null;
  const pr = obj(p.pull_request);
  const number = p.number ?? pr.number;
  const branch = str(obj(pr.head).ref);
  const act = str(p.action);
  const action =
    act === 'closed'
      ? 'close'
      : ['opened', 'reopened', 'synchronize', 'synchronized'].includes(act ?? '')
        ? 'deploy'
        : 'ignore';
  return typeof number === 'number' && branch ? { number, branch, sha: sha(obj(pr.head).sha), action } : null;
}

/** true, or why the delivery's signature is refused. */
export function verifySignature(
  provider: Provider,
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  raw: Buffer,
): true | string {
  const h = (n: string) => {
    const v = headers[n];
    return Array.isArray(v) ? v[0] : v;
  };
  const hmac = createHmac('sha256', secret).update(raw).digest('hex');
  if (provider === 'github') {
    const sig = h('x-hub-signature-256');
    if (!sig) return 'unsigned: no X-Hub-Signature-256 header';
    return safeEqual(sig.toLowerCase(), `sha256=${hmac}`) ? true : 'wrong signature (X-Hub-Signature-256)';
  }
  if (provider === 'gitea') {
    const sig = h('x-gitea-signature') ?? h('x-forgejo-signature') ?? h('x-gogs-signature');
    if (!sig) return 'unsigned: no X-Gitea-Signature header';
    return safeEqual(sig.toLowerCase(), hmac) ? true : 'wrong signature (X-Gitea-Signature)';
  }
  const t = h('x-gitlab-token');
  if (!t) return 'unsigned: no X-Gitlab-Token header';
  return safeEqual(t, secret) ? true : 'wrong X-Gitlab-Token';
}

/** The JSON payload (GitHub may also send it form-encoded as `payload=`). */
export function parsePayload(raw: Buffer, contentType: string): Record<string, unknown> {
  const text = raw.toString('utf8');
  const json = contentType.startsWith('application/x-www-form-urlencoded')
    ? (new URLSearchParams(text).get('payload') ?? '')
    : text;
  const v: unknown = JSON.parse(json);
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
  return v as Record<string, unknown>;
}
