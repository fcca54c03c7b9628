/**
 * The build queue as a resource: an app's builds in the queue (`GET /api/v1/apps/{id}/builds`) and seed
 * 002's `POST /api/v1/services/{id}/builds` (build the app's current source again). Cancelling is
 * `POST /api/v1/deployments/{id}/cancel` (routes/deployments.ts).
 */
import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';

type IdParams = { Params: { id: string } };

export function buildRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<IdParams>('/api/v1/apps/:id/builds', { config: { action: 'app:read' } }, async (req) => {
    const q = parse(
      z.object({ all: z.enum(['true', 'false', '1', '0']).optional() }).strict(),
      req.query,
      'query',
    );
    const row = await ctx.apps.get(req.params.id);
    const all = q.all === 'true' || q.all === '1';
    const builds = await ctx.deploys.list(row, 50, all ? undefined : ['queued', 'building', 'deploying']);
    return { builds };
  });

  app.post<IdParams>(
    '/api/v1/services/:id/builds',
    { config: { action: 'app:deploy' } },
    async (req, reply) => {
      const body = parse(
        z.object({ message: z.string().max(500).optional() }).strict(),
        req.body ?? {},
        'build request',
      );
      const row = await ctx.apps.get(req.params.id);
      // A git app builds its ref's newest commit (docs/git.md).
      if (await ctx.git.get(row)) return reply.status(202).send(await ctx.git.build(row, body));
      // Only a command deploy can be built again: an uploaded tree is not kept after its build (git sources
      // come with their own issue).
      const [last] = (await ctx.deploys.list(row, 50)).filter((d) => d.kind === 'build');
      const command = last ? await ctx.deploys.rebuildableCommand(last.id) : null;
      if (!last || !command) {
        throw new MinipaasError(
          'MINIPAAS_ERR_NOT_REBUILDABLE',
          last
            ? `the last deploy of "${row.name}" was an upload, which is not kept after its build; deploy the directory again (minipaas deploy)`
            : `"${row.name}" has never been deployed; deploy it first (minipaas deploy)`,
        );
      }
      const d = await ctx.deploys.deploy(row, { kind: 'command', command }, body.message ?? 'rebuild');
      return reply.status(202).send(d);
    },
  );
}
