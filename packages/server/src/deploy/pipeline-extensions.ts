/**
 * The release store and release phases the pipeline uses, in one place for both the in-process and the
 * separate worker: the pipeline's own release rows (InlineReleases), the release phases of phases.ts
 * (Procfile `release:`, app.json predeploy/postdeploy and env) and app.json from the source tree.
 */
import { type MinipaasConfig, readAppJson } from '@minipaas/core';
import type { Kysely } from 'kysely';
import { applyEnvChanges } from '../secrets/app-secrets.ts';
import type { AppService } from '../services/app-service.ts';
import type { Database } from '../store/schema.ts';
import { createPhases } from './phases.ts';
import type { PipelinePhases, PipelineReleases } from './pipeline-releases.ts';

export function pipelineExtensions(
  db: Kysely<Database>,
  _config: MinipaasConfig,
  apps: AppService,
): { releases?: PipelineReleases; phases?: PipelinePhases; readAppJson?: (dir: string) => Promise<unknown> } {
  // app.json `generator: "secret"` values are stored as secrets (sealed with the app's box).
  return {
    phases: createPhases(
      db,
      async (appId, name, value) =>
        (await applyEnvChanges(apps.secretStores, appId, {}, { secrets: { [name]: value } }))[name] as string,
    ),
    readAppJson,
  };
}
