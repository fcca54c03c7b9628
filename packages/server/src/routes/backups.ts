/** `/api/v1/backups` (platform and add-on dumps) and add-on restores (docs/addons.md). */
import { APP_NAME_RE } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';

const createBackupSchema = z
  .object({
    /** With `addon`: back up that add-on of this app; without both: the platform database. */
    app: z.string().regex(APP_NAME_RE, 'must be an app name').optional(),
    addon: z.string().max(100).optional(),
  })
  .strict()
  .refine((b) => (b.app === undefined) === (b.addon === undefined), 'give both app and addon, or neither');

const restoreSchema = z.object({ backup: z.string().max(200), fromOther: z.boolean().optional() }).strict();

export function backupRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/api/v1/backups', { config: { action: 'backup:read' } }, async () => ({
    backups: await ctx.backups.list(),
  }));

  app.post('/api/v1/backups', { config: { action: 'backup:create' } }, async (req, reply) => {
    const body = parse(createBackupSchema, req.body, 'backup request');
    const backup =
      body.app !== undefined && body.addon !== undefined
        ? await ctx.backups.backupAddon(body.app, body.addon)
        : await ctx.backups.backupPlatform();
    return reply.status(201).send(backup);
  });

  app.post<{ Params: { id: string; name: string } }>(
    '/api/v1/apps/:id/addons/:name/restore',
    { config: { action: 'addon:restore' } },
    async (req) => {
      const body = parse(restoreSchema, req.body, 'restore request');
      return {
        restored: await ctx.backups.restoreAddon(req.params.id, req.params.name, body.backup, {
          fromOther: body.fromOther === true,
        }),
      };
    },
  );
}
