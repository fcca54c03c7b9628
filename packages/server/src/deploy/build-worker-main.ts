/**
 * The build worker process (`minipaas-build-worker`): minipaasd starts it with an IPC channel and sends its
 * settings; it opens its own database pool, takes the platform's worker lock, recovers what a previous
 * worker left and runs deployments from the durable build queue. SIGTERM: running builds go back to the
 * queue, then it exits. Parent gone (the channel closes): it finishes what it runs, then exits.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homePaths, isMinipaasError } from '@minipaas/core';
import { lazyDockerRuntime } from '@minipaas/runtime-docker/light';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import { pgExecutor } from '@minipaas/sql';
import pg from 'pg';
import pino from 'pino';
import { RuntimeRegistry } from '../runtime/runtime-registry.ts';
import { AppService } from '../services/app-service.ts';
import { ProjectService } from '../services/project-service.ts';
import { openStore } from '../store/store.ts';
import { installSpecHooks } from '../volumes/spec-hooks.ts';
import { VolumeService } from '../volumes/volume-service.ts';
import type { BuildWorker } from './build-worker.ts';
import type { BuildWorkerInit } from './build-worker-process.ts';
import { DeploymentFeed } from './deployment-feed.ts';
import { DeploymentStore } from './deployment-store.ts';
import { createBuildWorker } from './pipeline.ts';
import { pipelineExtensions } from './pipeline-extensions.ts';

/** A worker with nothing to do for this long exits; minipaasd starts one again for the next deployment. */
const IDLE_EXIT_MS = 30_000;

/** Advisory lock key of "the build worker" (one per platform database). */
export const BUILD_WORKER_LOCK = 7070002;

function init(): Promise<BuildWorkerInit> {
  return new Promise((resolve, reject) => {
    if (!process.send) {
      reject(new Error('the build worker is started by minipaasd (it needs an IPC channel)'));
      return;
    }
    process.once('message', (m) => resolve(m as BuildWorkerInit));
  });
}

async function main(): Promise<void> {
  const { config, databaseUrl } = await init();
  const log = pino({ level: config.logLevel, base: { component: 'build-worker', pid: process.pid } });
  const store = await openStore({
    databaseUrl,
    connectRetryMs: 30_000,
    onConnectionError: (err) =>
      log.warn({ err: err.message }, 'a database connection failed; the pool replaces it'),
  });
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 3 });
  pool.on('error', (err) => log.warn({ err: err.message }, 'a queue connection failed'));
  const lockClient = new pg.Client({ connectionString: databaseUrl });
  // Losing the lock's connection (database restarted) loses the lock: stop, so minipaasd starts a worker
  // that takes it again and recovers whatever this one was running.
  lockClient.on('error', (err) => {
    log.error({ err: err.message }, 'the worker lock connection failed; restarting the build worker');
    void stop('abort', 'lost the worker lock');
  });
  // Docker apps build images and roll out here; minipaasd's own docker driver supervises them. Both load
  // dockerode on the first docker build, so a worker building process apps stays small.
  const docker = await lazyDockerRuntime(config);
  // Swarm apps roll out here too (their images come from the docker builder); loaded only with swarm.host.
  const swarm = config.swarm.host
    ? await (await import('@minipaas/runtime-swarm')).createSwarmRuntime(config, {
        onWarning: (msg, err) => log.warn({ err: (err as Error | undefined)?.message }, msg),
      })
    : null;
  const runtimes = new RuntimeRegistry([
    new ProcessDriver(new AgentClient(homePaths(config.home).agentSocket)),
    ...(docker ? [docker] : []),
    ...(swarm ? [swarm.driver] : []),
  ]);
  const projects = new ProjectService(store.db);
  const apps = new AppService({ db: store.db, config, runtimes, projects, log });
  // Volumes and resource limits complete every spec, as in minipaasd.
  installSpecHooks(apps, config, new VolumeService({ db: store.db, config, projects, apps, log }));
  const deployments = new DeploymentStore(store.db, new DeploymentFeed());
  const worker: BuildWorker = createBuildWorker({
    db: store.db,
    queueDb: pgExecutor(pool, { onListenError: (err) => log.warn({ err }, 'queue LISTEN failed') }),
    config,
    apps,
    runtimes,
    deployments,
    log,
    ...pipelineExtensions(store.db, config, apps),
    ...(docker ? { dockerBuilder: () => docker.builder() } : {}),
    // Idle for a while: exit (minipaasd starts a worker again when a deployment is queued).
    idleExitMs: IDLE_EXIT_MS,
    onIdle: () => {
      process.send?.({ type: 'idle' });
      void stop('drain', 'idle');
    },
    lock: async () => {
      await lockClient.connect();
      log.info('waiting for the build worker lock');
      await lockClient.query('SELECT pg_advisory_lock($1)', [BUILD_WORKER_LOCK]);
      log.info('build worker ready');
      return async () => {
        await lockClient.end();
      };
    },
  });
  let stopping = false;
  const stop = async (mode: 'abort' | 'drain', why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'stopping the build worker');
    try {
      await worker.stop(mode);
      await pool.end();
      await store.close();
    } finally {
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => void stop('abort', 'SIGTERM'));
  process.on('SIGINT', () => void stop('abort', 'SIGINT'));
  process.on('disconnect', () => void stop('drain', 'minipaasd is gone'));
  // run/build-worker.pid: which process runs builds (operators, tests); removed when it exits.
  const pidFile = homePaths(config.home).buildWorkerPid;
  writeFileSync(pidFile, `${process.pid}\n`);
  process.on('exit', () => {
    // a draining worker exits after its successor started: leave the successor's file alone
    try {
      if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) rmSync(pidFile, { force: true });
    } catch {
      // already gone
    }
  });
  await worker.start();
}

main().catch((err: unknown) => {
  const msg = isMinipaasError(err)
    ? err.message
    : err instanceof Error
      ? (err.stack ?? err.message)
      : String(err);
  process.stderr.write(`minipaas-build-worker: ${msg}\n`);
  process.exit(1);
});
