/**
 * API tokens (docs/security.md): a user's own tokens; platform admins (`user:read` / `user:manage`)
 * may list (`?all=true`) and revoke anyone's.
 *   GET    /api/v1/tokens[?all=true]
 *   POST   /api/v1/tokens   {name, role?, project?, expiresAt? | expiresInDays?} → the token, shown once
 *   DELETE /api/v1/tokens/{id}
 */
import { MinipaasError, ROLES } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { assertAllowed, isAllowed, type Principal } from '../http/access.ts';
import { parse } from '../http/validate.ts';

const createTokenSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    role: z.enum(ROLES).optional(),
    project: z.string().min(1).max(100).optional(),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    expiresInDays: z.number().int().min(1).max(3650).optional(),
  })
  .strict();

export function tokenRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Querystring: { all?: string } }>(
    '/api/v1/tokens',
    { config: { action: 'token:read' } },
    async (req) => {
      const q = parse(z.object({ all: z.enum(['true', 'false']).optional() }).strict(), req.query, 'query');
      if (q.all === 'true') assertAllowed(req, 'user:read', null);
      return { tokens: await ctx.tokens.list(req.principal as Principal, { all: q.all === 'true' }) };
    },
  );
  app.post('/api/v1/tokens', { config: { action: 'token:create' } }, async (req, reply) => {
    const input = parse(createTokenSchema, req.body, 'token');
    if (input.expiresAt && input.expiresInDays)
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'give expiresAt or expiresInDays, not both');
    const expiresAt = input.expiresAt
      ? new Date(input.expiresAt)
      : input.expiresInDays
        ? new Date(Date.now() + input.expiresInDays * 86_400_000)
        : undefined;
    const { token, view } = await ctx.tokens.create(
      req.principal as Principal,
      { name: input.name, role: input.role, project: input.project, expiresAt },
      ctx.access,
    );
    return reply.status(201).send({ ...view, token });
  });
  app.delete<{ Params: { id: string } }>(
    '/api/v1/tokens/:id',
    { config: { action: 'token:revoke' } },
    async (req) => {
      const p = req.principal as Principal;
      return ctx.tokens.revoke(p, req.params.id, { any: isAllowed(p, 'user:manage', null) });
    },
  );
}
