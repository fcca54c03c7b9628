/**
 * An app's releases (`GET /api/v1/apps/{id}/releases`) and rollbacks (`POST /api/v1/apps/{id}/rollback`
 * `{"release"?: N}`): a rollback redeploys an old release's artifact and config as a new release, through
 * the build queue but without a build (docs/apps.md).
 */
import { existsSync } from 'node:fs';
import { MinipaasError } from '@minipaas/core';
import { imageExists } from '@minipaas/runtime-docker/light';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';

type IdParams = { Params: { id: string } };

/** A release as the API lists it. */
export interface ReleaseView {
  version: number;
  createdAt: string;
  source: string;
  stack: string;
  status: string;
  rollbackOf: number | null;
  /** The git commit of a release built from git (docs/git.md), else null. */
  commit: { sha: string; message: string | null } | null;
  current: boolean;
  /** The release went live once and its artifact is still on disk. */
  canRollback: boolean;
}

export function releaseRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const list = async (ref: string) => {
    const row = await ctx.apps.get(ref);
    const rows = await ctx.store.db
      .selectFrom('releases')
      .selectAll()
      .where('app_id', '=', row.id)
      .orderBy('version', 'desc')
      .execute();
    // An image release can be rolled back to while the engine still has its image (retention.keepImages).
    const images = new Map<string, boolean>();
    for (const r of rows)
      if (r.artifact?.kind === 'image' && r.status === 'succeeded')
        images.set(r.artifact.ref, await imageExists(ctx.config.docker.socket, r.artifact.ref));
    const views: ReleaseView[] = rows.map((r) => {
      const artifact = r.artifact ?? { kind: 'directory' as const, path: r.dir };
      return {
        version: r.version,
        createdAt: new Date(r.created_at).toISOString(),
        source: r.source,
        stack: r.stack,
        status: r.status,
        rollbackOf: r.rollback_of,
        commit: r.commit_sha ? { sha: r.commit_sha, message: r.commit_message } : null,
        current: r.version === row.current_release,
        canRollback:
          r.status === 'succeeded' &&
          r.version !== row.current_release &&
          (artifact.kind === 'directory' ? existsSync(artifact.path) : images.get(artifact.ref) === true),
      };
    });
    return { row, views };
  };

  app.get<IdParams>('/api/v1/apps/:id/releases', { config: { action: 'app:read' } }, async (req) => ({
    releases: (await list(req.params.id)).views,
  }));

  app.post<IdParams>(
    '/api/v1/apps/:id/rollback',
    { config: { action: 'app:rollback' } },
    async (req, reply) => {
      const body = parse(
        z
          .object({
            release: z.number().int().min(1).max(1_000_000).optional(),
            message: z.string().max(500).optional(),
          })
          .strict(),
        req.body ?? {},
        'rollback request',
      );
      const { row, views } = await list(req.params.id);
      const target =
        body.release !== undefined
          ? views.find((v) => v.version === body.release)
          : views.find((v) => v.canRollback && v.version < (row.current_release ?? 0));
      if (!target)
        throw new MinipaasError(
          body.release !== undefined ? 'MINIPAAS_ERR_NOT_FOUND' : 'MINIPAAS_ERR_CONFLICT',
          body.release !== undefined
            ? `app "${row.name}" has no release v${body.release}`
            : `app "${row.name}" has no earlier release to roll back to`,
        );
      if (!target.canRollback)
        throw new MinipaasError(
          'MINIPAAS_ERR_CONFLICT',
          target.current
            ? `v${target.version} is already the current release of "${row.name}"`
            : `v${target.version} cannot be rolled back to (status ${target.status}, or its files or image were pruned)`,
        );
      const deployment = await ctx.deploys.rollback(row, target.version, body.message);
      return reply.status(202).send(deployment);
    },
  );
}
