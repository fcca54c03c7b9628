/**
 * Login through GitHub (`/auth/github`, seed 001) and OpenID Connect providers (`/auth/oidc/NAME`):
 * the start route sends the browser to the provider with state, nonce and a PKCE challenge kept in a
 * short-lived HttpOnly cookie; the callback checks them (the client library does), maps the identity
 * to a user (identity-linker.ts) and starts a session. `?invite=CODE` on the start route links a first
 * login to the invited user. Failures send the browser back to the landing page with a fixed message
 * (the details go to the platform log). Public routes: the provider's answer is the authentication.
 */
import { fastifyCookie } from '@fastify/cookie';
import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { PUBLIC_ROUTE } from '../http/auth.ts';
import { parse } from '../http/validate.ts';
import type { ExternalLoginProvider, LoginFlow } from './external-login.ts';
import { type IdentityLinker, INVITE_CODE_RE } from './identity-linker.ts';
import { cookieSecure, type LoginEvent, sessionCookies } from './login-routes.ts';
import { platformOrigin, readCookie } from './session-hook.ts';
import type { SessionStore } from './session-store.ts';

/** Cookie holding the flow state between the start route and the callback. */
export const FLOW_COOKIE = 'minipaas_login_flow';
/** A login must come back from the provider within this time. */
const FLOW_TTL_SECONDS = 600;

const flowSchema = z.object({
  provider: z.string().max(100),
  state: z.string().max(200),
  nonce: z.string().max(200),
  verifier: z.string().max(200),
  invite: z.string().max(100).optional(),
});

export interface ExternalLoginRoutesOptions {
  providers: ReadonlyMap<string, ExternalLoginProvider>;
  identities: IdentityLinker;
  sessions: SessionStore;
  publicUrl: string | undefined;
  secureCookies: 'auto' | 'on' | 'off';
  sessionTtlMs: number;
  /** How long an invite is valid. */
  inviteTtlMs: number;
  onEvent(event: LoginEvent, req: FastifyRequest): Promise<void>;
  log: Logger;
}

function encodeFlow(flow: LoginFlow): string {
  return Buffer.from(JSON.stringify(flow)).toString('base64url');
}

function decodeFlow(value: string | undefined): LoginFlow | null {
  if (!value || value.length > 4096) return null;
  try {
    const r = flowSchema.safeParse(JSON.parse(Buffer.from(value, 'base64url').toString('utf8')));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

const providerName = z.object({ name: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/) });
const inviteBody = z.object({ userId: z.string().min(1).max(200) });

export function externalLoginRoutes(app: FastifyInstance, opts: ExternalLoginRoutesOptions): void {
  const flowCookie = (req: FastifyRequest, value: string | null) =>
    fastifyCookie.serialize(FLOW_COOKIE, value ?? '', {
      path: '/auth/',
      httpOnly: true,
      sameSite: 'lax',
      secure: cookieSecure(req, opts.secureCookies),
      maxAge: value ? FLOW_TTL_SECONDS : 0,
    });
  const startPath = (id: string) =>
    id === 'github' ? '/auth/github' : `/auth/oidc/${id.slice('oidc:'.length)}`;
  const baseUrl = (req: FastifyRequest) => opts.publicUrl ?? platformOrigin(req, undefined);
  const callbackUri = (req: FastifyRequest, provider: ExternalLoginProvider) =>
    `${baseUrl(req)}${startPath(provider.id)}/callback`;
  const providerOf = (id: string): ExternalLoginProvider => {
    const p = opts.providers.get(id);
    if (!p) throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `login provider ${id} is not configured`);
    return p;
  };

  const start = async (req: FastifyRequest, reply: FastifyReply, provider: ExternalLoginProvider) => {
    const invite = (req.query as Record<string, unknown> | undefined)?.invite;
    if (invite !== undefined && (typeof invite !== 'string' || !INVITE_CODE_RE.test(invite)))
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'invalid invite code');
    let url: URL;
    let flow: LoginFlow;
    try {
      ({ url, flow } = await provider.start(callbackUri(req, provider)));
    } catch (err) {
      opts.log.warn({ provider: provider.id, err: (err as Error).message }, 'cannot start an external login');
      return reply.redirect('/?login=provider', 303);
    }
    if (typeof invite === 'string') flow.invite = invite;
    reply.header('set-cookie', flowCookie(req, encodeFlow(flow)));
    reply.header('cache-control', 'no-store');
    return reply.redirect(url.toString(), 303);
  };

  const callback = async (req: FastifyRequest, reply: FastifyReply, provider: ExternalLoginProvider) => {
    const flow = decodeFlow(readCookie(req, FLOW_COOKIE));
    const cookies = [flowCookie(req, null)];
    const back = (message: string) => {
      reply.header('set-cookie', cookies);
      return reply.redirect(`/?login=${message}`, 303);
    };
    if (!flow || flow.provider !== provider.id) return back('expired');
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
    const current = new URL(`${callbackUri(req, provider)}${query}`);
    let identity: Awaited<ReturnType<ExternalLoginProvider['finish']>>;
    try {
      identity = await provider.finish(current, flow);
    } catch (err) {
      const e = err as Error & { cause?: Error };
      opts.log.warn(
        { provider: provider.id, err: e.message, cause: e.cause?.message },
        'external login failed at the provider',
      );
      await opts.onEvent({ outcome: 'failure', method: provider.id, ip: req.ip, reason: e.message }, req);
      return back('provider');
    }
    const match = await opts.identities.resolve(identity, flow.invite);
    if (!match) {
      await opts.onEvent(
        {
          outcome: 'failure',
          method: provider.id,
          ip: req.ip,
          reason: `no user for ${provider.id} account ${identity.subject}`,
        },
        req,
      );
      return back('no-user');
    }
    const session = await opts.sessions.create({
      userId: match.userId,
      method: provider.id,
      ip: req.ip,
      userAgent: req.headers['user-agent'] ?? null,
    });
    await opts.onEvent(
      {
        outcome: 'success',
        method: provider.id,
        ip: req.ip,
        userId: match.userId,
        sessionId: session.sessionId,
      },
      req,
    );
    cookies.push(...sessionCookies(session, cookieSecure(req, opts.secureCookies), opts.sessionTtlMs));
    reply.header('set-cookie', cookies);
    return reply.redirect('/', 303);
  };

  app.get('/auth/github', PUBLIC_ROUTE, (req, reply) => start(req, reply, providerOf('github')));
  app.get('/auth/github/callback', PUBLIC_ROUTE, (req, reply) => callback(req, reply, providerOf('github')));
  app.get('/auth/oidc/:name', PUBLIC_ROUTE, (req, reply) =>
    start(req, reply, providerOf(`oidc:${parse(providerName, req.params, 'provider').name}`)),
  );
  app.get('/auth/oidc/:name/callback', PUBLIC_ROUTE, (req, reply) =>
    callback(req, reply, providerOf(`oidc:${parse(providerName, req.params, 'provider').name}`)),
  );

  // An invite: the next external login started with it (any provider) is linked to the user.
  app.post('/auth/invites', { config: { action: 'user:manage' } }, async (req, reply) => {
    const { userId } = parse(inviteBody, req.body, 'invite');
    const createdBy = req.session?.userId ?? req.identity?.name ?? null;
    const invite = await opts.identities.createInvite(userId, createdBy, opts.inviteTtlMs);
    return reply.status(201).send({
      id: invite.id,
      userId: invite.userId,
      code: invite.code,
      expiresAt: invite.expiresAt.toISOString(),
      urls: [...opts.providers.keys()].map((id) => `${baseUrl(req)}${startPath(id)}?invite=${invite.code}`),
    });
  });
}
