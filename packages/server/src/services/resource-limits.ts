/**
 * Per-app resource limits and restart policy (issue 9, seed 001 §3.4): the app's own `cpu_millicores`,
 * `memory_mb` and `restart_policy`, else the platform defaults `resources.defaultCpuMillicores` and
 * `resources.defaultMemoryMB`, and restart `always`. Every runtime gets them in the spec
 * (`RuntimeSpec.resources`, `.restart`) and applies them or reports them `unsupported`.
 */
import {
  type MinipaasConfig,
  MinipaasError,
  type ResourceLimits,
  type RestartPolicyName,
  type RuntimeSpec,
} from '@minipaas/core';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../store/schema.ts';
import type { AppRow } from './app-service.ts';

export const RESTART_POLICIES = ['always', 'on-failure', 'no'] as const;

/** The effective limits of an app, and where each value comes from. */
export interface ResourcesView {
  cpuMillicores: number;
  memoryMb: number;
  restartPolicy: RestartPolicyName;
  /** `app` when the app sets the value, `default` when the platform default applies. */
  source: { cpuMillicores: 'app' | 'default'; memoryMb: 'app' | 'default'; restartPolicy: 'app' | 'default' };
}

/** Body of `PATCH /api/v1/apps/{id}/resources`: a value sets, null returns to the default. */
export const patchResourcesSchema = z
  .object({
    cpuMillicores: z.number().int().min(10).max(1_024_000).nullable().optional(),
    memoryMb: z.number().int().min(4).max(1_048_576).nullable().optional(),
    restartPolicy: z.enum(RESTART_POLICIES).nullable().optional(),
  })
  .strict();

export type PatchResourcesInput = z.infer<typeof patchResourcesSchema>;

function isPolicy(v: unknown): v is RestartPolicyName {
  return typeof v === 'string' && (RESTART_POLICIES as readonly string[]).includes(v);
}

export function resourcesView(
  app: Pick<AppRow, 'cpu_millicores' | 'memory_mb' | 'restart_policy'>,
  config: MinipaasConfig,
): ResourcesView {
  return {
    cpuMillicores: app.cpu_millicores ?? config.resources.defaultCpuMillicores,
    memoryMb: app.memory_mb ?? config.resources.defaultMemoryMB,
    restartPolicy: isPolicy(app.restart_policy) ? app.restart_policy : 'always',
    source: {
      cpuMillicores: app.cpu_millicores == null ? 'default' : 'app',
      memoryMb: app.memory_mb == null ? 'default' : 'app',
      restartPolicy: isPolicy(app.restart_policy) ? 'app' : 'default',
    },
  };
}

/** Adds the app's limits and restart policy to a runtime spec. */
export function applyResources(
  app: Pick<AppRow, 'cpu_millicores' | 'memory_mb' | 'restart_policy'>,
  config: MinipaasConfig,
  spec: RuntimeSpec,
): void {
  const v = resourcesView(app, config);
  const resources: ResourceLimits = { cpuMillicores: v.cpuMillicores, memoryMb: v.memoryMb };
  spec.resources = resources;
  if (v.restartPolicy !== 'always') spec.restart = v.restartPolicy;
}

/** Stores the app's own values (null clears one); the caller redeploys the app's spec. */
export async function patchResources(
  db: Kysely<Database>,
  app: AppRow,
  input: PatchResourcesInput,
): Promise<AppRow> {
  const set: { cpu_millicores?: number | null; memory_mb?: number | null; restart_policy?: string | null } =
    {};
  if (input.cpuMillicores !== undefined) set.cpu_millicores = input.cpuMillicores;
  if (input.memoryMb !== undefined) set.memory_mb = input.memoryMb;
  if (input.restartPolicy !== undefined) set.restart_policy = input.restartPolicy;
  if (Object.keys(set).length === 0)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      'nothing to change: give cpuMillicores, memoryMb or restartPolicy',
    );
  return db
    .updateTable('apps')
    .set({ ...set, updated_at: new Date() })
    .where('id', '=', app.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}
