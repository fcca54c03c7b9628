import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TokenIdentity, TokenService } from '../services/token-service.ts';

declare module 'fastify' {
  interface FastifyRequest {
    identity: TokenIdentity | null;
  }
}

/** Requires `Authorization: Bearer <token>` on every /api/v1 route. */
export function registerAuth(app: FastifyInstance, tokens: TokenService): void {
  app.decorateRequest('identity', null);
  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (!req.url.startsWith('/api/')) return;
    const header = req.headers.authorization;
    if (!header)
      throw new MinipaasError(
        'MINIPAAS_ERR_UNAUTHENTICATED',
        'missing Authorization header: use "Authorization: Bearer <token>"',
      );
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m)
      throw new MinipaasError(
        'MINIPAAS_ERR_UNAUTHENTICATED',
        'Authorization header must be "Bearer <token>"',
      );
    const identity = await tokens.verify(m[1] as string);
    if (!identity) throw new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', 'invalid API token');
    req.identity = identity;
  });
}
