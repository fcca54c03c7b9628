import { Readable } from 'node:stream';
import { deployJsonSchema, deployQuerySchema, MinipaasError } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { uploadTooLarge } from '../deploy/upload-staging.ts';
import { openSse } from '../http/sse.ts';
import { parse } from '../http/validate.ts';

type IdParams = { Params: { id: string } };
export const ARCHIVE_TYPES = [
  'application/gzip',
  'application/x-gzip',
  'application/x-tar',
  'application/octet-stream',
];

export function deploymentRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // Archives are not parsed here: the handler streams the body to disk (see deploy/upload-staging.ts),
  // enforcing uploads.maxBytes itself, so an upload is never held in memory.
  app.addContentTypeParser(ARCHIVE_TYPES, (_req, payload, done) => done(null, payload));

  app.post<IdParams>('/api/v1/apps/:id/deploy', { config: { action: 'app:deploy' } }, async (req, reply) => {
    const row = await ctx.apps.get(req.params.id);
    const query = parse(deployQuerySchema, req.query, 'query');
    if (req.body instanceof Readable) {
      try {
        const declared = Number(req.headers['content-length'] ?? 0);
        if (declared > ctx.config.uploads.maxBytes) throw uploadTooLarge(ctx.config.uploads.maxBytes);
        const d = await ctx.deploys.deploy(
          row,
          { kind: 'upload', archive: req.body, command: query.command },
          query.message,
        );
        return reply.status(202).send(d);
      } catch (err) {
        // The rest of a refused upload is not read: close the connection after the answer.
        if (!req.raw.complete) reply.header('connection', 'close');
        throw err;
      }
    }
    const body = parse(deployJsonSchema, req.body, 'deploy request');
    const command = body.command ?? query.command;
    if (!command) {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        'send a gzipped tarball of the app (Content-Type: application/gzip) or JSON {"command": "..."}',
      );
    }
    const d = await ctx.deploys.deploy(row, { kind: 'command', command }, body.message ?? query.message);
    return reply.status(202).send(d);
  });

  app.get<IdParams>('/api/v1/apps/:id/deployments', { config: { action: 'app:read' } }, async (req) => {
    const row = await ctx.apps.get(req.params.id);
    return { deployments: await ctx.deploys.list(row) };
  });

  app.get<IdParams>('/api/v1/deployments/:id', { config: { action: 'app:read' } }, async (req) => {
    if (!z.uuid().safeParse(req.params.id).success) {
      throw new MinipaasError('MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND', `deployment "${req.params.id}" not found`);
    }
    return ctx.deploys.get(req.params.id);
  });

  app.get<IdParams>('/api/v1/deployments/:id/log', { config: { action: 'app:read' } }, async (req, reply) => {
    const q = parse(
      z.object({ follow: z.enum(['true', 'false', '1', '0']).optional() }).strict(),
      req.query,
      'query',
    );
    if (!z.uuid().safeParse(req.params.id).success) {
      throw new MinipaasError('MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND', `deployment "${req.params.id}" not found`);
    }
    const d = await ctx.deploys.get(req.params.id);
    if (q.follow !== 'true' && q.follow !== '1')
      return { log: d.log, status: d.status, position: d.position };
    // Lines as the build worker appends them (in this process or another: NOTIFY), status changes with
    // the queue position while queued, and the final deployment.
    const sse = openSse(req, reply);
    await ctx.deploys
      .follow(
        d.id,
        {
          log: (line) => sse.send({ line }, 'log'),
          status: (s) => sse.send(s, 'status'),
          end: (view) => sse.send(view, 'end'),
        },
        sse.signal,
      )
      .catch((err: unknown) => req.log.warn({ err }, 'deployment log stream failed'));
    sse.close();
  });

  app.post<IdParams>(
    '/api/v1/deployments/:id/cancel',
    { config: { action: 'build:cancel' } },
    async (req, reply) => {
      if (!z.uuid().safeParse(req.params.id).success) {
        throw new MinipaasError(
          'MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND',
          `deployment "${req.params.id}" not found`,
        );
      }
      return reply.status(200).send(await ctx.deploys.cancel(req.params.id));
    },
  );
}
