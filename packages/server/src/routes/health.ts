import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { PUBLIC_ROUTE } from '../http/auth.ts';

export function healthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/health', PUBLIC_ROUTE, async () => ({ status: 'ok', version: ctx.version }));
  app.get('/health/live', PUBLIC_ROUTE, async () => ({ status: 'live' }));
  app.get('/health/ready', PUBLIC_ROUTE, async (_req, reply) => {
    const checks: Record<string, string> = {};
    await ctx.store.ping().then(
      () => {
        checks.db = 'ok';
      },
      (err: Error) => {
        checks.db = `error: ${err.message}`;
      },
    );
    for (const [name, h] of Object.entries(await ctx.runtimes.health()))
      checks[name === 'process' ? 'agent' : name] = h.ok
        ? 'ok'
        : `error: ${'error' in h ? h.error : 'not ok'}`;
    const ok = Object.values(checks).every((v) => v === 'ok');
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not ready', checks });
  });
}
