import { logsQuerySchema } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { openSse } from '../http/sse.ts';
import { parse } from '../http/validate.ts';

export function logRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Params: { id: string } }>(
    '/api/v1/apps/:id/logs',
    { config: { action: 'app:logs' } },
    async (req, reply) => {
      const row = await ctx.apps.get(req.params.id);
      const q = parse(logsQuerySchema, req.query, 'query');
      if (!q.follow)
        return { lines: await ctx.runtimes.forApp(row).logs(row.name, { tail: q.tail, process: q.process }) };
      const sse = openSse(req, reply);
      try {
        for await (const line of ctx.runtimes.forApp(row).followLogs(row.name, {
          tail: q.tail,
          process: q.process,
          signal: sse.signal,
        })) {
          sse.send(line);
        }
      } catch (err) {
        if (!sse.signal.aborted) {
          req.log.warn({ err, app: row.name }, 'log stream ended with an error');
          sse.send({ message: (err as Error).message }, 'error');
        }
      } finally {
        sse.close();
      }
    },
  );
}
