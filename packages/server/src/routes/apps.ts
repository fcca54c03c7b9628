import { createAppSchema, MinipaasError, patchAppSchema, scaleSchema, scaleToMap } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { gitSourceFromBody } from '../git/git-url.ts';
import { assertAllowed, type Principal } from '../http/access.ts';
import { parse } from '../http/validate.ts';

type IdParams = { Params: { id: string } };

export function appRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/api/v1/apps', { config: { action: 'app:create' } }, async (req, reply) => {
    const input = parse(createAppSchema, req.body, 'app');
    // The project is in the body: checked here (its team's role, else "not found").
    assertAllowed(req, 'app:create', await ctx.access.project(input.project ?? 'default'));
    // `git`, seed 003's `repo_url` or seed 002's `build_source` (validated before the app exists).
    const git = gitSourceFromBody(input);
    const row = await ctx.apps.create(input);
    if (git) await ctx.git.configure(row, git);
    return reply.status(201).send(await ctx.apps.view(row, null));
  });

  app.get<{ Querystring: { project?: string } }>(
    '/api/v1/apps',
    { config: { action: 'app:read' } },
    async (req) => {
      const q = parse(z.object({ project: z.string().max(100).optional() }).strict(), req.query, 'query');
      if (q.project) assertAllowed(req, 'app:read', await ctx.access.project(q.project));
      const visible = await ctx.access.visibleProjectIds(req.principal as Principal, 'app:read');
      const rows = (await ctx.apps.list(q.project)).filter(
        (r) => visible === 'all' || visible.includes(r.project_id),
      );
      const states = await ctx.runtimes.list().catch(() => []);
      return {
        apps: await Promise.all(
          rows.map((r) =>
            ctx.apps.view(
              r,
              states.find((s) => s.name === r.name),
            ),
          ),
        ),
      };
    },
  );

  app.get<IdParams>('/api/v1/apps/:id', { config: { action: 'app:read' } }, async (req) => {
    const q = parse(z.object({ reveal: z.enum(['true', 'false']).optional() }).strict(), req.query, 'query');
    if (q.reveal === 'true') assertAllowed(req, 'app:secret:reveal');
    const row = await ctx.apps.get(req.params.id);
    // Secret values only on request (`app:secret:reveal`); every other answer masks them.
    return ctx.apps.view(row, await ctx.apps.observed(row), { reveal: q.reveal === 'true' });
  });

  app.patch<IdParams>('/api/v1/apps/:id', { config: { action: 'app:update' } }, async (req) => {
    const row = await ctx.apps.patch(req.params.id, parse(patchAppSchema, req.body, 'app update'));
    if (row.status === 'stopped') await ctx.deploys.markStopped(row.id);
    return ctx.apps.view(row, await ctx.apps.observed(row));
  });

  app.delete<IdParams>('/api/v1/apps/:id', { config: { action: 'app:delete' } }, async (req, reply) => {
    await ctx.apps.delete(req.params.id);
    return reply.status(204).send();
  });

  const scale = async (id: string, body: unknown) => {
    const counts = scaleToMap(parse(scaleSchema, body, 'scale request'));
    const row = await ctx.apps.scale(id, counts);
    return ctx.apps.view(row, await ctx.apps.observed(row));
  };
  app.post<IdParams>('/api/v1/apps/:id/scale', { config: { action: 'app:scale' } }, async (req) =>
    scale(req.params.id, req.body),
  );
  app.post<IdParams>('/api/v1/services/:id/scale', { config: { action: 'app:scale' } }, async (req) =>
    scale(req.params.id, req.body),
  );

  app.post<IdParams>('/api/v1/apps/:id/restart', { config: { action: 'app:deploy' } }, async (req, reply) => {
    const row = await ctx.apps.get(req.params.id);
    if (row.status === 'stopped')
      throw new MinipaasError('MINIPAAS_ERR_CONFLICT', `app "${row.name}" is stopped`);
    return reply.status(202).send(await ctx.deploys.deploy(row, { kind: 'restart' }));
  });

  app.get<IdParams>('/api/v1/apps/:id/instances', { config: { action: 'app:read' } }, async (req) => {
    const row = await ctx.apps.get(req.params.id);
    const state = await ctx.runtimes.forApp(row).get(row.name);
    return { instances: state?.instances ?? [] };
  });
}
