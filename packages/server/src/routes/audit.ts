/**
 * The audit log (docs/security.md): `GET /api/v1/audit` with filters, newest first and paged by
 * `before`; `follow=true` streams new entries as Server-Sent Events. Nothing changes or deletes an
 * entry through the API (there is no such route, and the database refuses it).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { openSse } from '../http/sse.ts';
import { parse } from '../http/validate.ts';
import type { AuditFilter } from '../services/audit-log.ts';

const id = z
  .string()
  .regex(/^\d{1,18}$/, 'must be an entry id')
  .transform(Number);
const auditQuery = z
  .object({
    actor: z.string().min(1).max(320).optional(),
    action: z
      .string()
      .regex(/^[a-z:*-]{1,60}$/, 'must be an action such as app:deploy or app:*')
      .optional(),
    outcome: z.enum(['success', 'denied', 'failure']).optional(),
    team: z.string().min(1).max(100).optional(),
    project: z.string().min(1).max(100).optional(),
    target: z.string().min(1).max(200).optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    until: z.iso.datetime({ offset: true }).optional(),
    before: id.optional(),
    after: id.optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    follow: z.enum(['true', 'false']).optional(),
  })
  .strict();

/** How often a follower looks for new entries. */
const FOLLOW_POLL_MS = 1000;

export function auditRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/api/v1/audit', { config: { action: 'audit:read' } }, async (req, reply) => {
    const q = parse(auditQuery, req.query, 'query');
    const filter: AuditFilter = {
      actor: q.actor,
      action: q.action,
      outcome: q.outcome,
      teamId: q.team ? (await ctx.access.team(q.team)).teamId : undefined,
      projectId: q.project ? ((await ctx.access.project(q.project)).projectId ?? undefined) : undefined,
      targetId: q.target,
      since: q.since ? new Date(q.since) : undefined,
      until: q.until ? new Date(q.until) : undefined,
      beforeId: q.before,
      afterId: q.after,
      limit: q.limit,
    };
    if (q.follow !== 'true') return { entries: await ctx.audit.list(filter) };
    // Follow: the last entries (oldest first), then every new one as it is appended.
    const recent = (await ctx.audit.list({ ...filter, afterId: undefined, limit: q.limit ?? 20 })).reverse();
    let last = q.after ?? (recent.length ? Number(recent.at(-1)?.id) : await ctx.audit.lastId());
    const sse = openSse(req, reply);
    if (q.after === undefined) for (const e of recent) sse.send(e);
    try {
      while (!sse.signal.aborted) {
        const next = await ctx.audit.list({ ...filter, beforeId: undefined, afterId: last, limit: 500 });
        for (const e of next) {
          sse.send(e);
          last = Number(e.id);
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, FOLLOW_POLL_MS);
          sse.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(t);
              resolve();
            },
            { once: true },
          );
        });
      }
    } catch (err) {
      req.log.error({ err: (err as Error).message }, 'audit follow stream failed');
    } finally {
      sse.close();
    }
    return reply;
  });
}
