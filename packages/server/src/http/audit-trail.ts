/**
 * Appends one audit entry per mutating API request (POST, PUT, PATCH, DELETE to a route that is not
 * public), before the answer is sent: who (user, token or session), the route's action, the target, the
 * request id, the source address, the status and the outcome. Refused requests are entries too
 * (`denied`: 401, 403, or a 404 that hides a target of another team). Public routes keep their own
 * records (login events are appended by login, webhook deliveries have their delivery log).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog, AuditOutcome } from '../services/audit-log.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The id of what a 201 answer created (for the audit entry). */
    createdId: string | null;
  }
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
const KINDS: Record<string, string> = {
  apps: 'app',
  services: 'app',
  projects: 'project',
  deployments: 'deployment',
  volumes: 'volume',
  teams: 'team',
  tokens: 'token',
  users: 'user',
  backups: 'backup',
};

/** The kind and id of what a route path names (`/api/v1/apps/:id/…` → app, the id). */
export function pathTarget(
  url: string,
  params: Record<string, string>,
): { type: string | null; id: string | null } {
  const m = /^\/api\/v1\/([a-z-]+)(?:\/:(\w+))?/.exec(url);
  if (!m) return { type: null, id: null };
  const type = KINDS[m[1] as string] ?? (m[1] as string);
  const id = m[2] ? (params[m[2]] ?? null) : null;
  return { type, id: typeof id === 'string' ? id : null };
}

function outcome(req: FastifyRequest, status: number): AuditOutcome {
  if (req.accessDenied || status === 401 || status === 403) return 'denied';
  return status < 400 ? 'success' : 'failure';
}

export function registerAuditTrail(
  app: FastifyInstance,
  audit: AuditLog,
  onError: (err: Error, req: FastifyRequest) => void,
): void {
  app.decorateRequest('createdId', null);
  // Written before the answer leaves: a client that got its answer finds the entry (`minipaas audit`
  // right after a command), and a crash after the answer cannot lose it.
  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload) => {
    if (READS.has(req.method)) return payload;
    if (req.routeOptions.config?.public === true || !req.routeOptions.url) return payload;
    if (reply.statusCode === 201 && typeof payload === 'string') {
      try {
        const body = JSON.parse(payload) as { id?: unknown };
        if (typeof body?.id === 'string') req.createdId = body.id;
      } catch {
        // not JSON: nothing to name
      }
    }
    const url = req.routeOptions.url;
    const t = pathTarget(url, (req.params ?? {}) as Record<string, string>);
    const p = req.principal;
    await audit
      .record({
        action: req.routeOptions.config?.action ?? 'unknown',
        outcome: outcome(req, reply.statusCode),
        actorUserId: p?.userId ?? null,
        actor: p?.name ?? null,
        tokenId: p?.tokenId ?? null,
        sessionId: p?.sessionId ?? null,
        method: req.method,
        path: req.url.split('?')[0],
        targetType: t.type,
        targetId: t.id ?? req.createdId,
        teamId: req.accessTarget?.teamId ?? null,
        projectId: req.accessTarget?.projectId ?? null,
        requestId: req.id,
        ip: req.ip,
        statusCode: reply.statusCode,
      })
      .catch((err: unknown) => onError(err as Error, req));
    return payload;
  });
}
