/**
 * Resource limits and usage of an app (issue 9, docs/apps.md):
 *   GET   /api/v1/apps/{id}/metrics     recent CPU/memory samples per instance (a short history)
 *   GET   /api/v1/apps/{id}/resources   effective cpu/memory limits and restart policy
 *   PATCH /api/v1/apps/{id}/resources   {cpuMillicores?, memoryMb?, restartPolicy?} (null: default);
 *                                       a running app is rolled onto the new limits
 */
import type { AppMetrics } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { parse } from '../http/validate.ts';
import { patchResources, patchResourcesSchema, resourcesView } from '../services/resource-limits.ts';

type IdParams = { Params: { id: string } };

export function metricsRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<IdParams>('/api/v1/apps/:id/metrics', { config: { action: 'app:read' } }, async (req) => {
    const row = await ctx.apps.get(req.params.id);
    const driver = ctx.runtimes.forApp(row);
    const metrics: AppMetrics | null = driver.metrics ? await driver.metrics(row.name) : null;
    return {
      app: row.name,
      runtime: driver.name,
      supported: Boolean(driver.metrics),
      intervalMs: metrics?.intervalMs ?? ctx.config.resources.sampleIntervalMs,
      instances: metrics?.instances ?? [],
    };
  });

  app.get<IdParams>('/api/v1/apps/:id/resources', { config: { action: 'app:read' } }, async (req) => {
    const row = await ctx.apps.get(req.params.id);
    return { app: row.name, ...resourcesView(row, ctx.config) };
  });

  app.patch<IdParams>('/api/v1/apps/:id/resources', { config: { action: 'app:update' } }, async (req) => {
    const input = parse(patchResourcesSchema, req.body, 'resources');
    const row = await patchResources(ctx.store.db, await ctx.apps.get(req.params.id), input);
    const state = await ctx.apps.apply(row);
    return { app: row.name, ...resourcesView(row, ctx.config), rollout: state?.rollout ?? null };
  });
}
