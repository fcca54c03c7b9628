/**
 * The release store and release phases the pipeline uses, in one place for both the in-process and the
 * separate worker. Until ReleaseStore and phases.ts are wired in, the pipeline's inline releases are used.
 */
import type { MinipaasConfig } from '@minipaas/core';
import type { Kysely } from 'kysely';
import type { AppService } from '../services/app-service.ts';
import type { Database } from '../store/schema.ts';
import type { PipelinePhases, PipelineReleases } from './pipeline-releases.ts';

export function pipelineExtensions(
  _db: Kysely<Database>,
  _config: MinipaasConfig,
  _apps: AppService,
): { releases?: PipelineReleases; phases?: PipelinePhases; readAppJson?: (dir: string) => Promise<unknown> } {
  return {};
}
