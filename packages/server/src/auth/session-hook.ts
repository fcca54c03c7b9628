/**
 * The session hook: runs on every request before authentication (http/auth.ts) and sets
 * `req.session = { userId, sessionId }` when the request carries a valid session cookie. A request
 * with an `Authorization` header is left to the bearer token alone (the cookie plays no part).
 *
 * CSRF: a state-changing request (not GET/HEAD/OPTIONS) made with the cookie must send the session's
 * synchronizer token, in the `x-csrf-token` header or, for an HTML form, in its `_csrf` field (checked
 * once the body is parsed, before any handler or access check runs); it must also not come from another
 * site (`Origin` other than the platform's, `Sec-Fetch-Site: cross-site`). Otherwise 403, and nothing runs.
 */
import { timingSafeEqual } from 'node:crypto';
import { fastifyCookie } from '@fastify/cookie';
import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { SessionStore } from './session-store.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The CSRF token of the request's session (set with `session` by the session hook). */
    csrfToken: string | null;
  }
}

/** The HttpOnly session cookie. */
export const SESSION_COOKIE = 'minipaas_session';
/** A readable copy of the CSRF token for scripts of the dashboard (double-submit into x-csrf-token). */
export const CSRF_COOKIE = 'minipaas_csrf';
export const CSRF_HEADER = 'x-csrf-token';
export const CSRF_FIELD = '_csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Cookie headers longer than this are not parsed for a session. */
const MAX_COOKIE_HEADER = 16 * 1024;

export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The value of one cookie of the request, if present. */
export function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header || header.length > MAX_COOKIE_HEADER) return undefined;
  return fastifyCookie.parse(header)[name];
}

/** The origin browsers use for the platform: `auth.publicUrl`, else the request's own. */
export function platformOrigin(req: FastifyRequest, publicUrl: string | undefined): string {
  return publicUrl ? new URL(publicUrl).origin : `${req.protocol}://${req.host}`;
}

/**
 * Throws 403 when a browser says the request comes from another site: `Sec-Fetch-Site` cross-site or
 * same-site (an app served at `APP.baseDomain` is same-site with the API), or an `Origin` other than
 * the platform's. `Origin: null` (sent by a page with `Referrer-Policy: no-referrer`) passes only with
 * `Sec-Fetch-Site: same-origin`. With `auth.publicUrl` unset, only the host is compared (a proxy in
 * front may change the scheme). Requests without these headers (scripts, the CLI) pass.
 */
export function refuseCrossSite(req: FastifyRequest, publicUrl: string | undefined): void {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site')
    throw new MinipaasError('MINIPAAS_ERR_FORBIDDEN', `cross-site request refused (Sec-Fetch-Site: ${site})`);
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let ok: boolean;
  if (origin === 'null') ok = site === 'same-origin';
  else
    try {
      const o = new URL(origin);
      ok = publicUrl
        ? o.origin === new URL(publicUrl).origin
        : o.host === new URL(`${req.protocol}://${req.host}`).host;
    } catch {
      ok = false;
    }
  if (!ok)
    throw new MinipaasError('MINIPAAS_ERR_FORBIDDEN', 'cross-site request refused (Origin does not match)');
}

function isForm(req: FastifyRequest): boolean {
  return /^application\/x-www-form-urlencoded\s*(;|$)/i.test(req.headers['content-type'] ?? '');
}

export interface SessionHookOptions {
  sessions: SessionStore;
  publicUrl: string | undefined;
}

/** Registers the session hook; call before `registerAuth` so it runs first. */
export function registerSessionHook(app: FastifyInstance, opts: SessionHookOptions): void {
  const formPending = new WeakSet<FastifyRequest>();
  // Loads the cookie parser/serializer that fastifyCookie.parse/serialize use (and reply.setCookie).
  void app.register(fastifyCookie);
  app.decorateRequest('csrfToken', null);
  app.addHook('onRequest', async (req) => {
    if (req.headers.authorization !== undefined) return;
    const token = readCookie(req, SESSION_COOKIE);
    if (!token) return;
    const session = await opts.sessions.lookup(token);
    if (!session) return;
    if (!SAFE_METHODS.has(req.method)) {
      refuseCrossSite(req, opts.publicUrl);
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent === 'string') {
        if (!sameToken(sent, session.csrfToken))
          throw new MinipaasError('MINIPAAS_ERR_FORBIDDEN', 'invalid CSRF token');
      } else if (isForm(req)) {
        formPending.add(req);
      } else {
        throw new MinipaasError(
          'MINIPAAS_ERR_FORBIDDEN',
          `missing CSRF token: a request made with the session cookie must send the ${CSRF_HEADER} header`,
        );
      }
    }
    req.session = { userId: session.userId, sessionId: session.sessionId };
    req.csrfToken = session.csrfToken;
  });
  app.addHook('preValidation', async (req) => {
    if (!formPending.has(req)) return;
    const body = req.body as Record<string, unknown> | null | undefined;
    const sent = body && typeof body === 'object' ? body[CSRF_FIELD] : undefined;
    if (typeof sent !== 'string' || !req.csrfToken || !sameToken(sent, req.csrfToken))
      throw new MinipaasError(
        'MINIPAAS_ERR_FORBIDDEN',
        `missing or invalid CSRF token (form field ${CSRF_FIELD})`,
      );
  });
}
