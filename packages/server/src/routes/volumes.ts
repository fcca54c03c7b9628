/**
 * Volumes and their files (seed 001 §1.4, docs/volumes.md):
 *   POST   /api/v1/projects/{id}/volumes            create  {name, mountPath?, maxSizeBytes?, app?}
 *   GET    /api/v1/projects/{id}/volumes            list
 *   GET    /api/v1/volumes/{id}                     one volume
 *   DELETE /api/v1/volumes/{id}                     delete it and its data
 *   GET    /api/v1/volumes/{id}/files?path=         list a directory
 *   POST   /api/v1/volumes/{id}/files?path=DIR      multipart upload into DIR; JSON {"directory": P}: mkdir -p
 *   DELETE /api/v1/volumes/{id}/files?path=&recursive=true
 *   GET    /api/v1/volumes/{id}/files/download?path=  streamed download
 *   GET    /api/v1/volumes/{id}/stats               size, counts, quota
 *   GET    /api/v1/volumes/{id}/backup              tar.gz of the volume
 *   POST   /api/v1/volumes/{id}/restore             tar.gz body: replaces the contents
 */
import { Readable } from 'node:stream';
import multipart from '@fastify/multipart';
import { MinipaasError } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';
import type { VolumeService } from '../volumes/volume-service.ts';

type IdParams = { Params: { id: string } };

const createSchema = z
  .object({
    name: z.string().min(1).max(63),
    mountPath: z.string().min(1).max(255).optional(),
    maxSizeBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    app: z.string().min(1).max(100).optional(),
  })
  .strict();
const pathQuery = z.object({ path: z.string().max(5000).optional() }).strict();
const deleteQuery = z
  .object({
    path: z.string().max(5000).optional(),
    recursive: z.enum(['true', 'false', '1', '0']).optional(),
  })
  .strict();
const mkdirSchema = z.object({ directory: z.string().min(1).max(5000) }).strict();

/** A refused upload of at most this many bytes (declared) is read to its end before the answer. */
const DRAIN_MAX_BYTES = 256 * 1024 * 1024;

/** True once the whole request body was read (or the request is gone). */
function bodyDone(raw: Readable & { complete?: boolean }): boolean {
  return raw.complete === true || raw.readableEnded || raw.destroyed;
}

/** Reads and drops the rest of a request body (ends on end, close or error). */
function drain(raw: Readable & { complete?: boolean }): Promise<void> {
  return new Promise((resolve) => {
    if (bodyDone(raw)) return resolve();
    raw.once('end', resolve);
    raw.once('close', resolve);
    raw.once('error', () => resolve());
    raw.resume();
  });
}

/** Most files in one multipart upload. */
const MAX_FILES = 1000;

/** Registers the volume routes in their own scope (the multipart parser is theirs alone). */
export function volumeRoutes(app: FastifyInstance, ctx: ServerContext, volumes: VolumeService): void {
  app.register(async (scope) => {
    await scope.register(multipart, {
      // busboy option: keep the file name as sent, so that "../x" is refused rather than cut to "x".
      ...({ preservePath: true } as object),
      limits: {
        fileSize: Number.MAX_SAFE_INTEGER, // the volume quota applies while streaming (volume-files.ts)
        files: MAX_FILES,
        fields: 10,
        parts: MAX_FILES,
        headerPairs: 100,
      },
    });
    routes(scope, ctx, volumes);
  });
}

function routes(app: FastifyInstance, _ctx: ServerContext, volumes: VolumeService): void {
  app.post<IdParams>(
    '/api/v1/projects/:id/volumes',
    { config: { action: 'volume:manage' } },
    async (req, reply) => {
      const input = parse(createSchema, req.body, 'volume');
      return reply.status(201).send(volumes.view(await volumes.create(req.params.id, input)));
    },
  );

  app.get<IdParams>('/api/v1/projects/:id/volumes', { config: { action: 'volume:read' } }, async (req) => ({
    volumes: (await volumes.list(req.params.id)).map((v) => volumes.view(v)),
  }));

  app.get<IdParams>('/api/v1/volumes/:id', { config: { action: 'volume:read' } }, async (req) =>
    volumes.view(await volumes.get(req.params.id)),
  );

  app.delete<IdParams>('/api/v1/volumes/:id', { config: { action: 'volume:manage' } }, async (req, reply) => {
    await volumes.delete(req.params.id);
    return reply.status(204).send();
  });

  app.get<IdParams>('/api/v1/volumes/:id/stats', { config: { action: 'volume:read' } }, async (req) =>
    volumes.stats(req.params.id),
  );

  app.get<IdParams>('/api/v1/volumes/:id/files', { config: { action: 'volume:read' } }, async (req) => {
    const q = parse(pathQuery, req.query, 'query');
    return { path: q.path ?? '', entries: await volumes.listFiles(req.params.id, q.path) };
  });

  app.get<IdParams>(
    '/api/v1/volumes/:id/files/download',
    { config: { action: 'volume:read' } },
    async (req, reply) => {
      const q = parse(pathQuery, req.query, 'query');
      if (q.path === undefined)
        throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'the "path" query parameter is required');
      const f = await volumes.download(req.params.id, q.path);
      reply.header('content-type', 'application/octet-stream');
      reply.header('content-length', String(f.size));
      reply.header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(f.name)}`);
      return reply.send(f.stream);
    },
  );

  app.post<IdParams>(
    '/api/v1/volumes/:id/files',
    { config: { action: 'volume:manage' } },
    async (req, reply) => {
      const q = parse(pathQuery, req.query, 'query');
      if (!req.isMultipart()) {
        const body = parse(
          mkdirSchema,
          req.body,
          'request (multipart/form-data upload, or JSON {"directory"})',
        );
        const created = await volumes.mkdir(req.params.id, body.directory);
        return reply.status(201).send({ directory: body.directory, created });
      }
      try {
        const parts = req.parts();
        async function* files() {
          for await (const part of parts) {
            if (part.type !== 'file')
              throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'only file parts are accepted in an upload');
            yield { name: part.filename, stream: part.file, mimeType: part.mimetype };
          }
        }
        const uploaded = await volumes.upload(req.params.id, q.path, files());
        if (uploaded.length === 0)
          throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'the upload contains no file part');
        return reply.status(201).send({ files: uploaded });
      } catch (err) {
        // A client still sending would see a reset instead of the answer: a small enough rest (by its
        // declared length) is read and dropped first; anything else is cut off after the answer.
        const declared = Number(req.headers['content-length'] ?? Number.NaN);
        if (!bodyDone(req.raw) && declared <= DRAIN_MAX_BYTES) await drain(req.raw);
        if (!bodyDone(req.raw)) reply.header('connection', 'close');
        throw err;
      }
    },
  );

  app.delete<IdParams>(
    '/api/v1/volumes/:id/files',
    { config: { action: 'volume:manage' } },
    async (req, reply) => {
      const q = parse(deleteQuery, req.query, 'query');
      if (q.path === undefined)
        throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'the "path" query parameter is required');
      await volumes.remove(req.params.id, q.path, q.recursive === 'true' || q.recursive === '1');
      return reply.status(204).send();
    },
  );

  app.get<IdParams>(
    '/api/v1/volumes/:id/backup',
    { config: { action: 'volume:read' } },
    async (req, reply) => {
      const { row, stream } = await volumes.backup(req.params.id);
      reply.header('content-type', 'application/gzip');
      reply.header('content-disposition', `attachment; filename="${row.name}.tar.gz"`);
      return reply.send(stream);
    },
  );

  app.post<IdParams>(
    '/api/v1/volumes/:id/restore',
    { config: { action: 'volume:manage' } },
    async (req, reply) => {
      if (!(req.body instanceof Readable))
        throw new MinipaasError(
          'MINIPAAS_ERR_UNSUPPORTED_MEDIA',
          'send the tarball as the body with Content-Type: application/gzip',
        );
      try {
        return await volumes.restore(req.params.id, req.body);
      } catch (err) {
        const declared = Number(req.headers['content-length'] ?? Number.NaN);
        if (!bodyDone(req.raw) && declared <= DRAIN_MAX_BYTES) await drain(req.raw);
        if (!bodyDone(req.raw)) reply.header('connection', 'close');
        throw err;
      }
    },
  );
}
