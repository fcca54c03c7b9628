/**
 * An app's git source (docs/git.md): `GET|PUT|DELETE /api/v1/apps/{id}/git` and
 * `POST /api/v1/apps/{id}/git/builds` (build the configured ref's newest commit, or `{ref}`).
 * Seed 002's `POST /api/v1/services/{id}/builds` builds a git app the same way (routes/builds.ts).
 */

import type { Readable } from 'node:stream';
import { type Action, MinipaasError } from '@minipaas/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { serveGitHttp } from '../git/git-http.ts';
import { MAX_SYNC_INTERVAL, MIN_SYNC_INTERVAL } from '../git/git-url.ts';
import { checkPrincipal, type Principal, type Target } from '../http/access.ts';
import { tokenPrincipal } from '../http/auth.ts';
import { parse } from '../http/validate.ts';
import type { AuditOutcome } from '../services/audit-log.ts';

type IdParams = { Params: { id: string } };

const settingsSchema = z
  .object({
    url: z.string().min(1).max(2000),
    ref: z.string().min(1).max(255).optional(),
    branch: z.string().min(1).max(255).optional(),
    /** An HTTPS token (`TOKEN` or `USER:TOKEN`); null removes the stored credential. */
    token: z.string().min(1).max(4096).nullable().optional(),
    /** An SSH deploy key (OpenSSH private key); null removes the stored credential. */
    sshKey: z.string().min(1).max(16384).nullable().optional(),
    sync: z
      .object({ interval: z.number().int().min(MIN_SYNC_INTERVAL).max(MAX_SYNC_INTERVAL) })
      .strict()
      .nullable()
      .optional(),
    previews: z.boolean().optional(),
  })
  .strict();

export function gitRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<IdParams>('/api/v1/apps/:id/git', { config: { action: 'app:read' } }, async (req) => {
    const row = await ctx.apps.get(req.params.id);
    const git = await ctx.git.get(row);
    if (!git) throw new MinipaasError('MINIPAAS_ERR_NO_GIT_SOURCE', `"${row.name}" has no git repository`);
    return ctx.git.view(git);
  });

  app.put<IdParams>('/api/v1/apps/:id/git', { config: { action: 'app:update' } }, async (req) => {
    const body = parse(settingsSchema, req.body, 'git source');
    const row = await ctx.apps.get(req.params.id);
    const git = await ctx.git.configure(row, {
      url: body.url,
      ref: body.ref ?? body.branch ?? 'main',
      ...(body.token !== undefined ? { token: body.token } : {}),
      ...(body.sshKey !== undefined ? { sshKey: body.sshKey } : {}),
      ...(body.sync !== undefined ? { syncIntervalSeconds: body.sync?.interval ?? null } : {}),
      ...(body.previews !== undefined ? { previews: body.previews } : {}),
    });
    return ctx.git.view(git);
  });

  app.patch<IdParams>('/api/v1/apps/:id/git', { config: { action: 'app:update' } }, async (req) => {
    const body = parse(
      z
        .object({
          ref: z.string().min(1).max(255).optional(),
          previews: z.boolean().optional(),
          sync: z
            .object({ interval: z.number().int().min(MIN_SYNC_INTERVAL).max(MAX_SYNC_INTERVAL) })
            .strict()
            .nullable()
            .optional(),
        })
        .strict(),
      req.body,
      'git settings',
    );
    const row = await ctx.apps.get(req.params.id);
    const git = await ctx.git.updateSettings(row, {
      ...(body.ref !== undefined ? { ref: body.ref } : {}),
      ...(body.previews !== undefined ? { previews: body.previews } : {}),
      ...(body.sync !== undefined ? { syncIntervalSeconds: body.sync?.interval ?? null } : {}),
    });
    return ctx.git.view(git);
  });

  app.get<IdParams>('/api/v1/apps/:id/previews', { config: { action: 'app:read' } }, async (req) => {
    const row = await ctx.apps.get(req.params.id);
    return { previews: await ctx.previews.list(row) };
  });

  app.delete<IdParams>('/api/v1/apps/:id/git', { config: { action: 'app:update' } }, async (req, reply) => {
    const row = await ctx.apps.get(req.params.id);
    if (!(await ctx.git.remove(row)))
      throw new MinipaasError('MINIPAAS_ERR_NO_GIT_SOURCE', `"${row.name}" has no git repository`);
    return reply.status(204).send();
  });

  app.post<IdParams>(
    '/api/v1/apps/:id/git/builds',
    { config: { action: 'app:deploy' } },
    async (req, reply) => {
      const body = parse(
        z
          .object({
            ref: z.string().min(1).max(255).optional(),
            message: z.string().max(500).optional(),
            command: z.string().min(1).max(4096).optional(),
          })
          .strict(),
        req.body ?? {},
        'git build request',
      );
      const row = await ctx.apps.get(req.params.id);
      const d = await ctx.git.build(row, body);
      return reply.status(202).send(d);
    },
  );
}

/** `Basic base64(user:password)` → the API token (the password; or the user name when it is empty). */
function basicToken(header: string | undefined): string | null {
  const m = /^Basic[ \t]+([A-Za-z0-9+/=]{1,1024})[ \t]*$/i.exec(header ?? '');
  if (!m) return null;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return decoded || null;
  return decoded.slice(colon + 1) || decoded.slice(0, colon) || null;
}

/**
 * `git push` / `git clone` over smart HTTP at `/git/APP.git` (docs/git.md), served by `git http-backend`.
 * These routes authenticate themselves (HTTP Basic, an API token as the password: what git sends) and
 * require `app:deploy` to push and `app:read` to fetch.
 */
export function gitHttpRoutes(app: FastifyInstance, ctx: ServerContext): void {
  void app.register(async (scope) => {
    // Pack requests reach the handler as the raw stream (git http-backend reads them).
    scope.addContentTypeParser(
      ['application/x-git-upload-pack-request', 'application/x-git-receive-pack-request'],
      (_req, payload, done) => done(null, payload),
    );
    const handle = async (
      req: FastifyRequest<{ Params: { repo: string } }>,
      reply: FastifyReply,
      service: string,
    ) => {
      const m = /^([a-z0-9][a-z0-9-]{0,62})\.git$/.exec(req.params.repo);
      if (!m) throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', 'git repositories are at /git/APP.git');
      if (service !== 'git-upload-pack' && service !== 'git-receive-pack')
        throw new MinipaasError(
          'MINIPAAS_ERR_VALIDATION',
          'only git smart HTTP is served (git 1.6.6 or later)',
        );
      const action: Action = service === 'git-receive-pack' ? 'app:deploy' : 'app:read';
      // Pushes (and refused push attempts) go to the audit log like mutating API requests.
      let principal: Principal | null = null;
      let target: Target | null = null;
      const audit = async (outcome: AuditOutcome, statusCode: number) => {
        if (service !== 'git-receive-pack') return;
        await ctx.audit
          .record({
            action: 'app:deploy',
            outcome,
            actorUserId: principal?.userId,
            actor: principal?.name,
            tokenId: principal?.tokenId,
            method: req.method,
            path: req.url.split('?')[0],
            targetType: 'app',
            targetId: m[1],
            teamId: outcome === 'denied' ? null : target?.teamId,
            projectId: outcome === 'denied' ? null : target?.projectId,
            requestId: req.id,
            ip: req.ip,
            statusCode,
            detail: { via: 'git push' },
          })
          .catch((err: unknown) =>
            req.log.error({ err: (err as Error).message }, 'cannot append to the audit log'),
          );
      };
      const token = basicToken(req.headers.authorization);
      const identity = token ? await ctx.tokens.verify(token) : null;
      if (!identity) {
        reply.header('www-authenticate', 'Basic realm="minipaas", charset="UTF-8"');
        await audit('denied', 401);
        throw new MinipaasError(
          'MINIPAAS_ERR_UNAUTHENTICATED',
          'git over HTTP needs an API token as the password (minipaas git:remote sets it up)',
        );
      }
      // The same rules as the API (http/access.ts): the token's role in the app's team, its project
      // scope; an app of another team is the same 404 as a missing one.
      principal = await tokenPrincipal(ctx.access, identity);
      try {
        target = await ctx.access.app(m[1] as string);
        checkPrincipal(principal, action, target);
      } catch (err) {
        if (err instanceof MinipaasError) await audit('denied', err.status);
        throw err;
      }
      const row = await ctx.apps.get(m[1] as string);
      await ctx.git.pushes.ensure(row.id);
      const rest = req.url.slice(req.url.indexOf('.git/') + 4).split('?')[0] as string;
      reply.hijack();
      const res = reply.raw;
      try {
        await serveGitHttp(
          {
            projectRoot: ctx.git.pushes.root,
            pathInfo: `/${ctx.git.pushes.name(row.id)}${rest}`,
            method: req.method,
            query: req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '',
            headers: req.headers,
            body: req.method === 'POST' ? (req.body as Readable) : null,
            remoteUser: identity.name,
            remoteAddr: req.ip,
            maxBodyBytes: ctx.config.uploads.maxBytes,
            ...(service === 'git-receive-pack' ? { onPush: ctx.git.pushHandler(row) } : {}),
          },
          res,
        );
        if (req.method === 'POST') await audit('success', res.statusCode);
      } catch (err) {
        if (req.method === 'POST') await audit('failure', res.headersSent ? res.statusCode : 500);
        req.log.warn({ err: (err as Error).message, app: row.name }, 'git http request failed');
        if (!res.headersSent) {
          const status =
            err instanceof MinipaasError && err.code === 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE' ? 413 : 500;
          res.writeHead(status, { 'content-type': 'text/plain' });
          res.end(`${(err as Error).message}\n`);
        } else res.end();
      }
    };
    type Req = FastifyRequest<{ Params: { repo: string }; Querystring: { service?: string } }>;
    scope.get('/git/:repo/info/refs', { config: { public: true } }, (req: Req, reply) =>
      handle(req, reply, String(req.query.service ?? '')),
    );
    scope.post('/git/:repo/git-upload-pack', { config: { public: true } }, (req: Req, reply) =>
      handle(req, reply, 'git-upload-pack'),
    );
    scope.post('/git/:repo/git-receive-pack', { config: { public: true } }, (req: Req, reply) =>
      handle(req, reply, 'git-receive-pack'),
    );
  });
}
