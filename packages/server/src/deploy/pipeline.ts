/**
 * Assembles the pipeline's stages into a build worker: the same wiring for a worker inside minipaasd
 * (PGlite, tests) and for the separate build-worker process (build-worker-main.ts).
 */
import type { MinipaasConfig } from '@minipaas/core';
import type { DockerBuilder } from '@minipaas/runtime-docker';
import type { SqlExecutor } from '@minipaas/sql';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { RuntimeRegistry } from '../runtime/runtime-registry.ts';
import type { AppService } from '../services/app-service.ts';
import type { Database } from '../store/schema.ts';
import { buildQueue } from './build-queue.ts';
import { BuildWorker, type BuildWorkerOptions } from './build-worker.ts';
import { DeploymentRunner } from './deployment-runner.ts';
import type { DeploymentStore } from './deployment-store.ts';
import {
  InlineReleases,
  NO_PHASES,
  type PipelinePhases,
  type PipelineReleases,
} from './pipeline-releases.ts';
import { ProcessBuilder } from './process-builder.ts';

export interface PipelineOptions {
  db: Kysely<Database>;
  /** The build queue's connection (a `pg` executor with LISTEN in the worker process). */
  queueDb: SqlExecutor;
  config: MinipaasConfig;
  apps: AppService;
  runtimes: RuntimeRegistry;
  deployments: DeploymentStore;
  log: Logger;
  /** The worker lock (see {@link BuildWorker}); none when this process is the only possible worker. */
  lock?: () => Promise<() => Promise<void>>;
  releases?: PipelineReleases;
  phases?: PipelinePhases;
  readAppJson?: (dir: string) => Promise<unknown>;
  nodeBin?: string;
  /** Image builder of docker-runtime apps, or its loader (absent: no docker runtime on this platform). */
  dockerBuilder?: DockerBuilder | (() => Promise<DockerBuilder>);
  /** See {@link BuildWorkerOptions.idleExitMs}. */
  idleExitMs?: number;
  onIdle?: () => void;
}

export function createBuildWorker(o: PipelineOptions): BuildWorker {
  const builder = new ProcessBuilder({ home: o.config.home, apps: o.apps, fallbackUser: o.config.apps.user });
  const runner = new DeploymentRunner({
    deployments: o.deployments,
    apps: o.apps,
    runtimes: o.runtimes,
    builder,
    releases:
      o.releases ?? new InlineReleases(o.db, o.config.apps.keepReleases, o.config.retention.keepDeployments),
    phases: o.phases ?? NO_PHASES,
    config: o.config,
    ...(o.readAppJson ? { readAppJson: o.readAppJson } : {}),
    nodeBin: o.nodeBin ?? process.execPath,
    log: o.log,
    ...(o.dockerBuilder ? { dockerBuilder: o.dockerBuilder } : {}),
  });
  return new BuildWorker({
    queue: buildQueue(o.queueDb),
    deployments: o.deployments,
    runner,
    apps: o.apps,
    config: o.config,
    log: o.log,
    ...(o.lock ? { lock: o.lock } : {}),
    ...(o.idleExitMs !== undefined ? { idleExitMs: o.idleExitMs } : {}),
    ...(o.onIdle ? { onIdle: o.onIdle } : {}),
    ...(o.queueDb.listen ? { listen: o.queueDb.listen.bind(o.queueDb) } : {}),
  });
}
