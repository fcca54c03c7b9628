import { createAppSchema, createProjectSchema } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';

export function projectRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/api/v1/projects', async (req, reply) => {
    const project = await ctx.projects.create(parse(createProjectSchema, req.body, 'project'));
    return reply.status(201).send(project);
  });
  app.get('/api/v1/projects', async () => ({ projects: await ctx.projects.list() }));
  app.get<{ Params: { id: string } }>('/api/v1/projects/:id', async (req) => ctx.projects.get(req.params.id));
  app.delete<{ Params: { id: string } }>('/api/v1/projects/:id', async (req, reply) => {
    await ctx.projects.delete(req.params.id);
    return reply.status(204).send();
  });
  app.post<{ Params: { id: string } }>('/api/v1/projects/:id/services', async (req, reply) => {
    const row = await ctx.apps.create(parse(createAppSchema, req.body, 'service'), req.params.id);
    return reply.status(201).send(await ctx.apps.view(row, null));
  });
  app.get<{ Params: { id: string } }>('/api/v1/projects/:id/services', async (req) => {
    const rows = await ctx.apps.list(req.params.id);
    const states = await ctx.runtimes.list().catch(() => []);
    return {
      services: await Promise.all(
        rows.map((r) =>
          ctx.apps.view(
            r,
            states.find((s) => s.name === r.name),
          ),
        ),
      ),
    };
  });
}
