/** `/api/v1/apps/{id}/addons`: managed Postgres databases of an app (docs/addons.md). */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { assertAllowed } from '../http/access.ts';
import { parse } from '../http/validate.ts';
import { createAddonSchema } from '../services/addon-service.ts';

type AppParams = { Params: { id: string } };
type AddonParams = { Params: { id: string; name: string } };

const revealQuery = z.object({ reveal: z.enum(['true', 'false', '1', '0']).optional() }).strict();
const destroyQuery = z.object({ confirm: z.string().max(100).optional() }).strict();

export function addonRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<AppParams>(
    '/api/v1/apps/:id/addons',
    { config: { action: 'addon:create' } },
    async (req, reply) => {
      const input = parse(createAddonSchema, req.body, 'add-on');
      const { app: row, addon } = await ctx.addons.create(req.params.id, input);
      return reply.status(201).send(ctx.addons.view(row, addon));
    },
  );

  app.get<AppParams>('/api/v1/apps/:id/addons', { config: { action: 'addon:read' } }, async (req) => {
    const row = await ctx.apps.get(req.params.id);
    return { addons: (await ctx.addons.list(row)).map((a) => ctx.addons.view(row, a)) };
  });

  app.get<AddonParams>('/api/v1/apps/:id/addons/:name', { config: { action: 'addon:read' } }, async (req) => {
    const q = parse(revealQuery, req.query, 'query');
    const row = await ctx.apps.get(req.params.id);
    const reveal = q.reveal === 'true' || q.reveal === '1';
    if (reveal) assertAllowed(req, 'addon:reveal');
    return ctx.addons.view(row, await ctx.addons.get(row, req.params.name), reveal);
  });

  app.post<AddonParams>(
    '/api/v1/apps/:id/addons/:name/sql-install',
    { config: { action: 'addon:create' } },
    async (req) => {
      parse(z.object({}).strict(), req.body ?? {}, 'request');
      const { app: row, addon } = await ctx.addons.installSql(req.params.id, req.params.name);
      return { installed: '@minipaas/sql', schema: 'minipaas', addon: ctx.addons.view(row, addon) };
    },
  );

  app.delete<AddonParams>(
    '/api/v1/apps/:id/addons/:name',
    { config: { action: 'addon:delete' } },
    async (req, reply) => {
      const q = parse(destroyQuery, req.query, 'query');
      await ctx.addons.destroy(req.params.id, req.params.name, q.confirm);
      return reply.status(204).send();
    },
  );
}
