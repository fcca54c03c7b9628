import { createAppSchema, MinipaasError, patchAppSchema, scaleSchema, scaleToMap } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { gitSourceFromBody } from '../git/git-url.ts';
import { parse } from '../http/validate.ts';

type IdParams = { Params: { id: string } };

export function appRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/api/v1/apps', async (req, reply) => {
    const input = parse(createAppSchema, req.body, 'app');
    // `git`, seed 003's `repo_url` or seed 002's `build_source` (validated before the app exists).
    const git = gitSourceFromBody(input);
    const row = await ctx.apps.create(input);
    if (git) await ctx.git.configure(row, git);
    return reply.status(201).send(await ctx.apps.view(row, null));
  });

  app.get<{ Querystring: { project?: string } }>('/api/v1/apps', async (req) => {
    const q = parse(z.object({ project: z.string().max(100).optional() }).strict(), req.query, 'query');
    const rows = await ctx.apps.list(q.project);
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
  });

  app.get<IdParams>('/api/v1/apps/:id', async (req) => {
    const q = parse(z.object({ reveal: z.enum(['true', 'false']).optional() }).strict(), req.query, 'query');
    const row = await ctx.apps.get(req.params.id);
    // Secret values only on request (`app:secret:reveal`); every other answer masks them.
    return ctx.apps.view(row, await ctx.apps.observed(row), { reveal: q.reveal === 'true' });
  });

  app.patch<IdParams>('/api/v1/apps/:id', async (req) => {
    const row = await ctx.apps.patch(req.params.id, parse(patchAppSchema, req.body, 'app update'));
    if (row.status === 'stopped') await ctx.deploys.markStopped(row.id);
    return ctx.apps.view(row, await ctx.apps.observed(row));
  });

  app.delete<IdParams>('/api/v1/apps/:id', async (req, reply) => {
    await ctx.apps.delete(req.params.id);
    return reply.status(204).send();
  });

  const scale = async (id: string, body: unknown) => {
    const counts = scaleToMap(parse(scaleSchema, body, 'scale request'));
    const row = await ctx.apps.scale(id, counts);
    return ctx.apps.view(row, await ctx.apps.observed(row));
  };
  app.post<IdParams>('/api/v1/apps/:id/scale', async (req) => scale(req.params.id, req.body));
  app.post<IdParams>('/api/v1/services/:id/scale', async (req) => scale(req.params.id, req.body));

  app.post<IdParams>('/api/v1/apps/:id/restart', async (req, reply) => {
    const row = await ctx.apps.get(req.params.id);
    if (row.status === 'stopped')
      throw new MinipaasError('MINIPAAS_ERR_CONFLICT', `app "${row.name}" is stopped`);
    return reply.status(202).send(await ctx.deploys.deploy(row, { kind: 'restart' }));
  });

  app.get<IdParams>('/api/v1/apps/:id/instances', async (req) => {
    const row = await ctx.apps.get(req.params.id);
    const state = await ctx.runtimes.forApp(row).get(row.name);
    return { instances: state?.instances ?? [] };
  });
}
