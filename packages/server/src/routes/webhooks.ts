/**
 * Push webhooks (docs/git.md): the receiver `POST /api/v1/webhooks/{app}/{token}` (public: it
 * authenticates each delivery by its token and signature itself) and the app's webhook settings,
 * `GET|POST|PATCH|DELETE /api/v1/apps/{id}/webhook`, `POST .../webhook/regenerate` and the delivery log
 * `GET .../webhook/deliveries` (all `webhook:manage`).
 */
import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';

type IdParams = { Params: { id: string } };

/** Largest delivery read (GitHub caps payloads at 25 MB; a push's is far smaller). */
const MAX_DELIVERY_BYTES = 5 * 1024 * 1024;

export function webhookRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const reveal = (req: FastifyRequest) =>
    parse(z.object({ reveal: z.enum(['true', 'false']).optional() }).strict(), req.query, 'query').reveal ===
    'true';

  app.get<IdParams>('/api/v1/apps/:id/webhook', { config: { action: 'webhook:manage' } }, async (req) => {
    const row = await ctx.apps.get(req.params.id);
    return ctx.webhooks.view(row, reveal(req));
  });

  app.post<IdParams>(
    '/api/v1/apps/:id/webhook',
    { config: { action: 'webhook:manage' } },
    async (req, reply) => {
      const body = parse(
        z.object({ branch: z.string().min(1).max(255).optional() }).strict(),
        req.body ?? {},
        'webhook',
      );
      const row = await ctx.apps.get(req.params.id);
      await ctx.webhooks.create(row, body.branch);
      return reply.status(201).send(await ctx.webhooks.view(row, true));
    },
  );

  app.patch<IdParams>('/api/v1/apps/:id/webhook', { config: { action: 'webhook:manage' } }, async (req) => {
    const body = parse(
      z
        .object({ enabled: z.boolean().optional(), branch: z.string().min(1).max(255).nullable().optional() })
        .strict(),
      req.body,
      'webhook update',
    );
    const row = await ctx.apps.get(req.params.id);
    await ctx.webhooks.update(row, body);
    return ctx.webhooks.view(row, false);
  });

  app.post<IdParams>(
    '/api/v1/apps/:id/webhook/regenerate',
    { config: { action: 'webhook:manage' } },
    async (req) => {
      const row = await ctx.apps.get(req.params.id);
      await ctx.webhooks.regenerate(row);
      return ctx.webhooks.view(row, true);
    },
  );

  app.delete<IdParams>(
    '/api/v1/apps/:id/webhook',
    { config: { action: 'webhook:manage' } },
    async (req, reply) => {
      const row = await ctx.apps.get(req.params.id);
      await ctx.webhooks.remove(row);
      return reply.status(204).send();
    },
  );

  app.get<IdParams>(
    '/api/v1/apps/:id/webhook/deliveries',
    { config: { action: 'webhook:manage' } },
    async (req) => {
      const q = parse(
        z.object({ limit: z.coerce.number().int().min(1).max(200).optional() }).strict(),
        req.query,
        'query',
      );
      const row = await ctx.apps.get(req.params.id);
      return { deliveries: await ctx.webhooks.deliveries(row, q.limit ?? 50) };
    },
  );

  // Project webhooks (seed 001): one URL deploys every app of the project built from the pushed repository.
  type ProjectParams = { Params: { id: string } };
  const projectId = async (ref: string) => (await ctx.projects.get(ref)).id;
  app.get<ProjectParams>(
    '/api/v1/projects/:id/webhook',
    { config: { action: 'webhook:manage' } },
    async (req) => ctx.projectWebhooks.view(await projectId(req.params.id), reveal(req)),
  );
  app.post<ProjectParams>(
    '/api/v1/projects/:id/webhook',
    { config: { action: 'webhook:manage' } },
    async (req, reply) => {
      const id = await projectId(req.params.id);
      await ctx.projectWebhooks.create(id);
      return reply.status(201).send(await ctx.projectWebhooks.view(id, true));
    },
  );
  app.post<ProjectParams>(
    '/api/v1/projects/:id/webhook/regenerate',
    { config: { action: 'webhook:manage' } },
    async (req) => {
      const id = await projectId(req.params.id);
      await ctx.projectWebhooks.view(id, false); // 404 without one
      await ctx.projectWebhooks.create(id, true);
      return ctx.projectWebhooks.view(id, true);
    },
  );
  app.patch<ProjectParams>(
    '/api/v1/projects/:id/webhook',
    { config: { action: 'webhook:manage' } },
    async (req) => {
      const body = parse(z.object({ enabled: z.boolean() }).strict(), req.body, 'webhook update');
      const id = await projectId(req.params.id);
      await ctx.projectWebhooks.setEnabled(id, body.enabled);
      return ctx.projectWebhooks.view(id, false);
    },
  );
  app.get<ProjectParams>(
    '/api/v1/projects/:id/webhook/deliveries',
    { config: { action: 'webhook:manage' } },
    async (req) => ({ deliveries: await ctx.projectWebhooks.deliveries(await projectId(req.params.id)) }),
  );

  // The receiver reads the raw body: the signature is over the exact bytes.
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: MAX_DELIVERY_BYTES },
      (_req, body, done) => done(null, body),
    );
    scope.post<{ Params: { app: string; token: string } }>(
      '/api/v1/webhooks/:app/:token',
      { config: { public: true }, bodyLimit: MAX_DELIVERY_BYTES },
      async (req, reply) => {
        const { app: name, token } = req.params;
        const unknown = () =>
          new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', 'unknown webhook (wrong app or token)');
        if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name) || !/^[A-Za-z0-9_-]{20,100}$/.test(token))
          throw unknown();
        const row = await ctx.apps.get(name).catch((err: unknown) => {
          if (err instanceof MinipaasError && err.code === 'MINIPAAS_ERR_APP_NOT_FOUND') throw unknown();
          throw err;
        });
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const r = await ctx.webhooks.receive(row, token, req.headers, raw);
        if (r.outcome === 'rejected' && (r.status === 401 || r.status === 400))
          throw new MinipaasError(
            r.status === 401 ? 'MINIPAAS_ERR_UNAUTHENTICATED' : 'MINIPAAS_ERR_VALIDATION',
            r.reason,
          );
        return reply.status(r.status).send({
          outcome: r.outcome,
          reason: r.reason,
          ...(r.deployment ? { deployment: r.deployment } : {}),
        });
      },
    );
    scope.post<{ Params: { project: string; token: string } }>(
      '/api/webhooks/:project/:token',
      { config: { public: true }, bodyLimit: MAX_DELIVERY_BYTES },
      async (req, reply) => {
        const { project, token } = req.params;
        const unknown = () =>
          new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', 'unknown webhook (wrong project or token)');
        if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/.test(project) || !/^[A-Za-z0-9_-]{20,100}$/.test(token))
          throw unknown();
        const found = await ctx.projects.get(project).catch((err: unknown) => {
          if (err instanceof MinipaasError && err.code === 'MINIPAAS_ERR_PROJECT_NOT_FOUND') throw unknown();
          throw err;
        });
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const r = await ctx.projectWebhooks.receive(found.id, token, req.headers, raw);
        if (r.outcome === 'rejected' && (r.status === 401 || r.status === 400))
          throw new MinipaasError(
            r.status === 401 ? 'MINIPAAS_ERR_UNAUTHENTICATED' : 'MINIPAAS_ERR_VALIDATION',
            r.reason,
          );
        return reply
          .status(r.status)
          .send({ outcome: r.outcome, reason: r.reason, deployments: r.deployments ?? [] });
      },
    );
  });
}
