import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import type { Principal } from '../http/access.ts';

export function statusRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/api/v1/whoami', { config: { action: 'self:read' } }, async (req) =>
    ctx.access.whoami(req.principal as Principal, req.identity),
  );
  app.get('/api/v1/status', { config: { action: 'platform:read' } }, async () => {
    const { api, router } = ctx.config;
    const runtimes = await ctx.runtimes.health();
    const agent = runtimes.process ?? null;
    const rows = await ctx.apps.list();
    const states = await ctx.runtimes.list().catch(() => []);
    const views = await Promise.all(
      rows.map((r) =>
        ctx.apps.view(
          r,
          states.find((s) => s.name === r.name),
        ),
      ),
    );
    const host = api.host === '0.0.0.0' ? '127.0.0.1' : api.host;
    return {
      version: ctx.version,
      store: ctx.store.kind,
      api: { url: `http://${host}:${api.port}` },
      router: {
        url: `http://${router.baseDomain}:${router.port}`,
        port: router.port,
        baseDomain: router.baseDomain,
      },
      agent,
      runtimes,
      apps: {
        total: views.length,
        running: views.filter((v) => v.status === 'running').length,
        failed: views.filter((v) => v.status === 'failed' || v.status === 'crashed').length,
      },
    };
  });
}
