/**
 * Browser login, put together once (composition root for server.ts): the session store, the password
 * limiter, the external providers from `config.auth`, the identity linker, the session hook and the
 * routes (`/`, `/auth/*`). server.ts calls `registerSessionHook` before `registerAuth` (the hook must
 * run first) and `registerRoutes` with the other routes.
 */
import type { MinipaasConfig } from '@minipaas/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../store/schema.ts';
import { externalLoginRoutes } from './external-login-routes.ts';
import { IdentityLinker, type UserLookup } from './identity-linker.ts';
import { landingRoutes, type SignedInSource } from './landing-routes.ts';
import { LoginLimiter } from './login-limiter.ts';
import { loginOptions, loginProviders } from './login-providers.ts';
import { addFormParser, type LoginEvent, loginRoutes, type PasswordVerifier } from './login-routes.ts';
import { registerSessionHook } from './session-hook.ts';
import { SessionStore } from './session-store.ts';

/** What login needs from the users of access control. */
export interface UserDirectory extends PasswordVerifier, UserLookup, SignedInSource {}

export interface LoginOptions {
  db: Kysely<Database>;
  config: MinipaasConfig;
  users: UserDirectory;
  log: Logger;
  /** Also told of every login, failed login and logout (the audit log); default: only the platform log. */
  onEvent?: (event: LoginEvent, req: FastifyRequest) => Promise<void>;
}

/** Invites are valid this long. */
const INVITE_TTL_MS = 7 * 24 * 3600_000;

export interface Login {
  sessions: SessionStore;
  identities: IdentityLinker;
  registerSessionHook(app: FastifyInstance): void;
  registerRoutes(app: FastifyInstance): void;
}

export function createLogin(opts: LoginOptions): Login {
  const { config, log } = opts;
  const auth = config.auth;
  const sessions = new SessionStore(opts.db, { ttlMs: auth.sessionTtlMs, idleMs: auth.sessionIdleMs });
  const limiter = new LoginLimiter(opts.db, {
    maxFailuresPerUser: auth.loginMaxFailures,
    maxFailuresPerIp: auth.loginMaxFailuresPerIp,
    lockMs: auth.loginLockMs,
  });
  const identities = new IdentityLinker(opts.db, opts.users);
  const providers = loginProviders(config);
  const onEvent = async (event: LoginEvent, req: FastifyRequest) => {
    const line = { ...event, requestId: req.id };
    if (event.outcome === 'success' || event.outcome === 'logout') log.info(line, `login ${event.outcome}`);
    else log.warn(line, `login ${event.outcome}`);
    await opts.onEvent?.(event, req);
  };
  const cookieOpts = {
    publicUrl: auth.publicUrl,
    secureCookies: auth.secureCookies,
    sessionTtlMs: auth.sessionTtlMs,
  };
  return {
    sessions,
    identities,
    registerSessionHook(app) {
      registerSessionHook(app, { sessions, publicUrl: auth.publicUrl });
    },
    registerRoutes(app) {
      landingRoutes(app, {
        options: loginOptions(config, providers),
        signedIn: opts.users,
        csrfTokenOf: (req) => (req as FastifyRequest).csrfToken ?? null,
      });
      // The login form posts urlencoded: its parser exists only in this scope.
      void app.register(async (scope) => {
        addFormParser(scope);
        loginRoutes(scope, {
          ...cookieOpts,
          sessions,
          limiter,
          passwords: opts.users,
          passwordLogin: auth.passwordLogin === 'on',
          onEvent,
        });
        externalLoginRoutes(scope, {
          ...cookieOpts,
          providers,
          identities,
          sessions,
          inviteTtlMs: INVITE_TTL_MS,
          onEvent,
          log,
        });
      });
    },
  };
}
