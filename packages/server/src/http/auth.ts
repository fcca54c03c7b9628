/**
 * Authentication is a property of the matched route, never of the URL string: one hook runs for
 * every request (every route, the 404 handler included) and lets it through without a token only
 * when the route that Fastify matched declares `config: { public: true }`. Whatever spelling of a
 * path reaches a route (percent-encoding, dot segments, letter case), the route's own config
 * decides, so an encoded path cannot skip the check. Fail closed: a route without the flag,
 * or a request that matched no route, needs a valid token (or a browser session).
 * What the caller may then do is decided by http/access.ts.
 */
import { type Action, MinipaasError } from '@minipaas/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TokenIdentity, TokenService } from '../services/token-service.ts';
import type { AccessControl, Principal } from './access.ts';

declare module 'fastify' {
  interface FastifyRequest {
    identity: TokenIdentity | null;
    /**
     * The browser session this request carries, set by the session hook (packages/server/src/auth/)
     * before authentication runs; only set when the cookie is valid and, for a state-changing request,
     * the CSRF token matches. Authentication accepts it in place of a bearer token.
     */
    session: { userId: string; sessionId: string } | null;
  }
  interface FastifyContextConfig {
    /** Serve this route without authentication (health checks only). Default false. */
    public?: boolean;
    /**
     * The permission this route needs (packages/core/src/permissions.ts). Every non-public route
     * declares one; the access-control pre-handler enforces it.
     */
    action?: Action;
  }
}

/** The route config that marks a route as reachable without a token. */
export const PUBLIC_ROUTE = { config: { public: true } } as const;

/** True when the route Fastify matched for `req` is declared public. */
export function isPublicRoute(req: FastifyRequest): boolean {
  return req.routeOptions.config?.public === true;
}

const REFUSALS = {
  invalid: 'invalid API token',
  expired: 'this API token has expired',
  revoked: 'this API token has been revoked',
  disabled: 'the user of this API token is disabled',
} as const;

/**
 * Requires `Authorization: Bearer <token>` (or a browser session set by the session hook) on every
 * route that is not declared public, and sets `req.principal`: who is calling, with their teams.
 */
export function registerAuth(app: FastifyInstance, tokens: TokenService, access: AccessControl): void {
  app.decorateRequest('identity', null);
  app.decorateRequest('session', null);
  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (isPublicRoute(req)) return;
    const header = req.headers.authorization;
    if (!header && req.session) {
      req.principal = await sessionPrincipal(access, req.session);
      return;
    }
    if (!header)
      throw new MinipaasError(
        'MINIPAAS_ERR_UNAUTHENTICATED',
        'missing Authorization header: use "Authorization: Bearer <token>"',
      );
    const m = /^Bearer[ \t]+([\x21-\x7e]{1,512})[ \t]*$/i.exec(header);
    if (!m)
      throw new MinipaasError(
        'MINIPAAS_ERR_UNAUTHENTICATED',
        'Authorization header must be "Bearer <token>"',
      );
    const identity = await tokens.check(m[1] as string);
    if ('refused' in identity)
      throw new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', REFUSALS[identity.refused]);
    req.identity = identity;
    req.principal = await tokenPrincipal(access, identity);
  });
}

/** The caller behind a valid token. */
export async function tokenPrincipal(access: AccessControl, t: TokenIdentity): Promise<Principal> {
  const user = t.userId ? await access.user(t.userId) : null;
  return {
    userId: t.userId,
    name: user?.email ?? t.name,
    tokenId: t.id,
    sessionId: null,
    cap: t.role,
    everywhere: t.userId === null,
    projectId: t.projectId,
    teams: t.userId ? await access.teamsOf(t.userId, t.role) : new Map(),
  };
}

async function sessionPrincipal(
  access: AccessControl,
  s: { userId: string; sessionId: string },
): Promise<Principal> {
  const user = await access.user(s.userId);
  if (!user || user.disabled)
    throw new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', 'the user of this session is disabled');
  return {
    userId: s.userId,
    name: user.email,
    tokenId: null,
    sessionId: s.sessionId,
    cap: 'owner',
    everywhere: false,
    projectId: null,
    teams: await access.teamsOf(s.userId, 'owner'),
  };
}
