import { createAppSchema, createProjectSchema } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { assertAllowed, PLATFORM_TEAM, type Principal } from '../http/access.ts';
import { parse } from '../http/validate.ts';

export function projectRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/api/v1/projects', { config: { action: 'project:create' } }, async (req, reply) => {
    const q = parse(z.object({ team: z.string().max(100).optional() }).strict(), req.query, 'query');
    // The owning team: ?team=, else the platform team; the caller needs project:create there.
    const team = await ctx.access.team(q.team ?? PLATFORM_TEAM);
    assertAllowed(req, 'project:create', team);
    const project = await ctx.projects.create(parse(createProjectSchema, req.body, 'project'), team.teamId);
    return reply.status(201).send(project);
  });
  app.get('/api/v1/projects', { config: { action: 'project:read' } }, async (req) => {
    const visible = await ctx.access.visibleProjectIds(req.principal as Principal);
    const projects = await ctx.projects.list();
    return { projects: projects.filter((p) => visible === 'all' || visible.includes(p.id)) };
  });
  app.get<{ Params: { id: string } }>(
    '/api/v1/projects/:id',
    { config: { action: 'project:read' } },
    async (req) => ctx.projects.get(req.params.id),
  );
  app.delete<{ Params: { id: string } }>(
    '/api/v1/projects/:id',
    { config: { action: 'project:delete' } },
    async (req, reply) => {
      await ctx.projects.delete(req.params.id);
      return reply.status(204).send();
    },
  );
  app.post<{ Params: { id: string } }>(
    '/api/v1/projects/:id/services',
    { config: { action: 'app:create' } },
    async (req, reply) => {
      const input = parse(createAppSchema, req.body, 'service');
      if (input.project !== undefined && input.project !== req.params.id)
        assertAllowed(req, 'app:create', await ctx.access.project(input.project));
      const row = await ctx.apps.create(input, req.params.id);
      return reply.status(201).send(await ctx.apps.view(row, null));
    },
  );
  app.get<{ Params: { id: string } }>(
    '/api/v1/projects/:id/services',
    { config: { action: 'app:read' } },
    async (req) => {
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
    },
  );
}
