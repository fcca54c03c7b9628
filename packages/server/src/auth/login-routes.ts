/**
 * Password login and logout for browsers and scripts, and the current session:
 * - `POST /auth/login` with JSON `{login, password}` answers the session as JSON; the landing page's
 *   form (urlencoded) is answered with a redirect to `/`. Limited per user name and per address
 *   (login-limiter.ts). Sets the HttpOnly session cookie and the CSRF cookie.
 * - `POST /auth/logout` ends the session of the cookie (the session hook has checked its CSRF token).
 * - `GET /auth/session` tells a browser script who it is logged in as, and its CSRF token.
 * These routes are public (`config: { public: true }`): each does its own authentication.
 */

import { fastifyCookie } from '@fastify/cookie';
import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { PUBLIC_ROUTE } from '../http/auth.ts';
import { parse } from '../http/validate.ts';
import type { LoginLimiter } from './login-limiter.ts';
import { CSRF_COOKIE, refuseCrossSite, SESSION_COOKIE } from './session-hook.ts';
import type { NewSession, SessionStore } from './session-store.ts';

/** Checks a user name and password (the users table of access control). */
export interface PasswordVerifier {
  /** The user's id when the password is right and the user may log in, else null (in similar time). */
  verify(login: string, password: string): Promise<string | null>;
}

/** A login attempt, for the audit log and the platform log. */
export interface LoginEvent {
  outcome: 'success' | 'failure' | 'locked' | 'logout';
  method: string;
  ip: string;
  userId?: string | undefined;
  /** The user name tried (password logins). */
  login?: string | undefined;
  sessionId?: string | undefined;
  reason?: string | undefined;
}

export interface LoginRoutesOptions {
  sessions: SessionStore;
  limiter: LoginLimiter;
  passwords: PasswordVerifier;
  passwordLogin: boolean;
  publicUrl: string | undefined;
  secureCookies: 'auto' | 'on' | 'off';
  sessionTtlMs: number;
  /** Called for every login, failed login and logout; must not throw for a failed write (it is awaited). */
  onEvent(event: LoginEvent, req: FastifyRequest): Promise<void>;
}

const loginBody = z.object({
  login: z.string().trim().min(1).max(200),
  password: z.string().min(1).max(1024),
});

/** Largest form body accepted by the login routes. */
const FORM_BODY_BYTES = 16 * 1024;

function isFormRequest(req: FastifyRequest): boolean {
  return /^application\/x-www-form-urlencoded\s*(;|$)/i.test(req.headers['content-type'] ?? '');
}

/** `Set-Cookie` lines for a new session (or, with null, lines that clear both cookies). */
export function sessionCookies(session: NewSession | null, secure: boolean, ttlMs: number): string[] {
  const maxAge = session ? Math.floor(ttlMs / 1000) : 0;
  const base = { path: '/', secure, maxAge } as const;
  return [
    fastifyCookie.serialize(SESSION_COOKIE, session?.token ?? '', {
      ...base,
      httpOnly: true,
      sameSite: 'lax',
    }),
    fastifyCookie.serialize(CSRF_COOKIE, session?.csrfToken ?? '', { ...base, sameSite: 'strict' }),
  ];
}

export function cookieSecure(req: FastifyRequest, mode: 'auto' | 'on' | 'off'): boolean {
  return mode === 'on' || (mode === 'auto' && req.protocol === 'https');
}

/** Sets the session cookies on a reply. */
export function setSessionCookies(
  reply: FastifyReply,
  req: FastifyRequest,
  session: NewSession | null,
  opts: Pick<LoginRoutesOptions, 'secureCookies' | 'sessionTtlMs'>,
): void {
  reply.header(
    'set-cookie',
    sessionCookies(session, cookieSecure(req, opts.secureCookies), opts.sessionTtlMs),
  );
}

/** Registers the form body parser (urlencoded, bounded) in an encapsulated scope of login routes. */
export function addFormParser(scope: FastifyInstance): void {
  scope.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: FORM_BODY_BYTES },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
}

export function loginRoutes(app: FastifyInstance, opts: LoginRoutesOptions): void {
  app.post('/auth/login', PUBLIC_ROUTE, async (req, reply) => {
    const form = isFormRequest(req);
    refuseCrossSite(req, opts.publicUrl);
    if (!opts.passwordLogin)
      throw new MinipaasError(
        'MINIPAAS_ERR_NOT_AVAILABLE',
        'password login is turned off (auth.passwordLogin)',
      );
    const { login, password } = parse(loginBody, req.body, 'login');
    const fail = (outcome: 'failure' | 'locked', err: MinipaasError) =>
      form
        ? reply.redirect(`/?login=${outcome === 'locked' ? 'locked' : 'failed'}#login`, 303)
        : Promise.reject(err);
    try {
      await opts.limiter.attempt(login, req.ip);
    } catch (err) {
      await opts.onEvent({ outcome: 'locked', method: 'password', ip: req.ip, login, reason: 'locked' }, req);
      return fail('locked', err as MinipaasError);
    }
    const userId = await opts.passwords.verify(login, password);
    if (!userId) {
      await opts.onEvent(
        { outcome: 'failure', method: 'password', ip: req.ip, login, reason: 'wrong password' },
        req,
      );
      return fail('failure', new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', 'wrong email or password'));
    }
    await opts.limiter.succeed(login, req.ip);
    const session = await opts.sessions.create({
      userId,
      method: 'password',
      ip: req.ip,
      userAgent: req.headers['user-agent'] ?? null,
    });
    await opts.onEvent(
      { outcome: 'success', method: 'password', ip: req.ip, login, userId, sessionId: session.sessionId },
      req,
    );
    setSessionCookies(reply, req, session, opts);
    if (form) return reply.redirect('/', 303);
    return {
      user: { id: userId },
      session: { id: session.sessionId, method: session.method, expiresAt: session.expiresAt.toISOString() },
      csrfToken: session.csrfToken,
    };
  });

  app.post('/auth/logout', PUBLIC_ROUTE, async (req, reply) => {
    if (req.session) {
      await opts.sessions.delete(req.session.sessionId);
      await opts.onEvent(
        {
          outcome: 'logout',
          method: 'session',
          ip: req.ip,
          userId: req.session.userId,
          sessionId: req.session.sessionId,
        },
        req,
      );
    }
    setSessionCookies(reply, req, null, opts);
    if (isFormRequest(req)) return reply.redirect('/?login=logged-out', 303);
    return reply.status(204).send();
  });

  app.get('/auth/session', PUBLIC_ROUTE, async (req) => {
    if (!req.session || !req.csrfToken)
      throw new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', 'no valid session cookie');
    return {
      user: { id: req.session.userId },
      session: { id: req.session.sessionId },
      csrfToken: req.csrfToken,
    };
  });
}
