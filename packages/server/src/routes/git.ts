/**
 * An app's git source (docs/git.md): `GET|PUT|DELETE /api/v1/apps/{id}/git` and
 * `POST /api/v1/apps/{id}/git/builds` (build the configured ref's newest commit, or `{ref}`).
 * Seed 002's `POST /api/v1/services/{id}/builds` builds a git app the same way (routes/builds.ts).
 */
import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';

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
      .object({ interval: z.number().int().min(10).max(86_400) })
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
