import { type LogLine, logsQuerySchema } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { openSse } from '../http/sse.ts';
import { parse } from '../http/validate.ts';
import { maskLine } from '../secrets/app-secrets.ts';

export function logRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Params: { id: string } }>(
    '/api/v1/apps/:id/logs',
    { config: { action: 'app:logs' } },
    async (req, reply) => {
      const row = await ctx.apps.get(req.params.id);
      const q = parse(logsQuerySchema, req.query, 'query');
      // Secret values never leave in a log line, whichever runtime captured it (docs/security.md).
      const mask = await ctx.apps.logMask(row);
      const masked = (l: LogLine): LogLine => ({ ...l, line: maskLine(l.line, mask) });
      if (!q.follow)
        return {
          lines: (await ctx.runtimes.forApp(row).logs(row.name, { tail: q.tail, process: q.process })).map(
            masked,
          ),
        };
      const sse = openSse(req, reply);
      try {
        for await (const line of ctx.runtimes.forApp(row).followLogs(row.name, {
          tail: q.tail,
          process: q.process,
          signal: sse.signal,
        })) {
          sse.send(masked(line));
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
