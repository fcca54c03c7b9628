/**
 * Users (docs/security.md), platform-wide: `user:read` lists them, `user:manage` (owner of the
 * platform team) creates, renames, disables them and sets their password.
 *   POST  /api/v1/users        {email, name?, password?, team?, role?}
 *   GET   /api/v1/users
 *   GET   /api/v1/users/{id or email}
 *   PATCH /api/v1/users/{id or email}   {name?, disabled?, password?}
 */
import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';
import { createUserSchema, patchUserSchema } from '../services/user-service.ts';

type IdParams = { Params: { id: string } };

export function userRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/api/v1/users', { config: { action: 'user:manage' } }, async (req, reply) => {
    const input = parse(createUserSchema, req.body, 'user');
    const team =
      input.team !== undefined || input.role !== undefined
        ? await ctx.access.team(input.team ?? 'default')
        : null;
    return reply.status(201).send(await ctx.users.create(input, team?.teamId));
  });
  app.get('/api/v1/users', { config: { action: 'user:read' } }, async () => ({
    users: await ctx.users.list(),
  }));
  app.get<IdParams>('/api/v1/users/:id', { config: { action: 'user:read' } }, async (req) =>
    ctx.users.get(req.params.id),
  );
  app.patch<IdParams>('/api/v1/users/:id', { config: { action: 'user:manage' } }, async (req) => {
    const input = parse(patchUserSchema, req.body, 'user update');
    // Nobody locks themselves out (and with it, perhaps, the platform's last owner).
    if (input.disabled === true && (await ctx.users.get(req.params.id)).id === req.principal?.userId)
      throw new MinipaasError('MINIPAAS_ERR_CONFLICT', 'you cannot disable yourself');
    return ctx.users.patch(req.params.id, input);
  });
}
