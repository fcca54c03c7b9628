/** `POST /api/v1/secrets/rotate-key`: a new master key, every secret sealed again under it (docs/security.md). */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { rotateMasterKey } from '../secrets/app-secrets.ts';

export function secretRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/api/v1/secrets/rotate-key', { config: { action: 'platform:manage' } }, async () => {
    const r = await rotateMasterKey(ctx.store.db, ctx.apps.secretBox);
    ctx.log.info({ kid: r.kid, resealed: r.resealed }, 'master key rotated');
    return { kid: r.kid, resealed: r.resealed };
  });
}
