/**
 * Runs one deployment through the stages: build (source → process builder → release) or a rollback's or
 * restart's release, then the rollout. Used by the build worker; the worker decides what a failure means
 * (failed, cancelled, retried), the runner puts the app and the release back in order when it throws.
 */
import { rm } from 'node:fs/promises';
import { type MinipaasConfig, MinipaasError } from '@minipaas/core';
import { APP_MANIFEST, type AppManifest } from '@minipaas/core/app-manifest';
import type { DockerBuilder } from '@minipaas/runtime-docker';
import type { Logger } from 'pino';
import type { RuntimeRegistry } from '../runtime/runtime-registry.ts';
import type { AppRow, AppService } from '../services/app-service.ts';
import { applyManifestConfig } from './app-manifest-config.ts';
import { manifestRuntime, readAppManifest } from './app-manifest-source.ts';
import { type DeploymentRow, type DeploymentStore, LogWriter } from './deployment-store.ts';
import { buildDockerRelease } from './docker-build-stage.ts';
import type {
  ImageCommandRunner,
  PipelinePhases,
  PipelineReleases,
  ReleaseRow,
} from './pipeline-releases.ts';
import type { ProcessBuilder } from './process-builder.ts';
import { rollout } from './rollout.ts';
import { detectSource } from './source-stage.ts';

export interface DeploymentRunnerDeps {
  deployments: DeploymentStore;
  apps: AppService;
  runtimes: RuntimeRegistry;
  builder: ProcessBuilder;
  releases: PipelineReleases;
  phases: PipelinePhases;
  config: MinipaasConfig;
  /** Reads a source tree's app.json (null without one). */
  readAppJson?: (dir: string) => Promise<unknown>;
  /** Node binary used to run the built-in static server. */
  nodeBin: string;
  log: Logger;
  /**
   * Image builder of apps on the docker runtime, or a function that loads it on the first docker build
   * (absent: this platform has no docker runtime).
   */
  dockerBuilder?: DockerBuilder | (() => Promise<DockerBuilder>);
}

/** Thrown when the signal aborted the deployment before the switch (the reason says why). */
export class DeploymentAborted extends Error {
  readonly reason: unknown;
  constructor(reason: unknown) {
    super('the deployment was stopped');
    this.name = 'DeploymentAborted';
    this.reason = reason;
  }
}

export class DeploymentRunner {
  readonly #d: DeploymentRunnerDeps;

  constructor(deps: DeploymentRunnerDeps) {
    this.#d = deps;
  }

  /**
   * Runs deployment `row` (already moved to building or deploying by the worker). `signal` stops it
   * before the switch; once the runtime has the new spec the deployment runs to the runtime's verdict.
   */
  async run(row: DeploymentRow, signal: AbortSignal): Promise<void> {
    const d = this.#d;
    const log = new LogWriter(d.deployments, row.id);
    const say = (line: string) => log.say(line);
    const check = () => {
      if (signal.aborted) throw new DeploymentAborted(signal.reason);
    };
    let app = await d.apps.get(row.app_id);
    let release: ReleaseRow | null = null;
    try {
      await d.apps.setStatus(app.id, 'deploying');
      if (row.attempts > 1) await say(`-----> Attempt ${row.attempts}`);
      if (row.kind === 'restart') {
        if (!app.current_release)
          throw new MinipaasError('MINIPAAS_ERR_NO_RELEASE', 'the app has no release to restart');
        release = await d.releases.get(app.id, app.current_release);
        await say(`-----> Restarting release v${release.version}`);
      } else if (row.release_version !== null) {
        // A retry after the release was recorded: roll that release out again.
        release = await d.releases.get(app.id, row.release_version);
        await say(`-----> Resuming with release v${release.version}`);
      } else if (row.kind === 'rollback') {
        if (row.rollback_to === null)
          throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'rollback without a version');
        release = await d.releases.createRollback(app, row.rollback_to, row.id);
        await d.deployments.setRelease(row.id, release.version);
        await say(`-----> Rolling back to v${row.rollback_to} as v${release.version} (no build)`);
      } else {
        const manifest = row.source_dir ? await readAppManifest(row.source_dir) : null;
        app = await this.#applyManifest(app, manifest, say);
        if ((app.runtime === 'docker' || app.runtime === 'swarm') && d.dockerBuilder) {
          const builder = typeof d.dockerBuilder === 'function' ? await d.dockerBuilder() : d.dockerBuilder;
          release = (await buildDockerRelease({ ...d, builder }, row, app, log, signal, manifest)).release;
        } else {
          release = await this.#build(row, app, log, signal);
        }
        app = await d.apps.get(app.id);
      }
      check();
      await d.deployments.transition(row.id, 'deploying', { release: release.version }, [
        'building',
        'deploying',
      ]);
      app = await d.apps.get(app.id);
      const spec = await d.apps.specFor({ ...app, status: 'deploying' }, release);
      await d.apps.checkLimits(app, spec.processes);
      const dockerBuilder = d.dockerBuilder;
      const ctx = {
        app,
        release,
        spec,
        say,
        signal,
        user: await d.builder.buildUser(app),
        // Release phases of image releases run in a one-off container of the image.
        ...(dockerBuilder
          ? {
              runInImage: async (o: Parameters<ImageCommandRunner>[0]) =>
                (typeof dockerBuilder === 'function' ? await dockerBuilder() : dockerBuilder).runOneOff({
                  ...o,
                  app: app.name,
                  network: d.config.docker.network,
                  ...(spec.resources?.memoryMb ? { memoryMb: spec.resources.memoryMb } : {}),
                }),
            }
          : {}),
      };
      if (row.kind !== 'restart') await d.phases.runBeforeSwitch(ctx);
      check();
      const types = Object.entries(spec.processes).map(([t, p]) => `${t}=${p.instances}`);
      await say(
        `-----> Starting ${types.join(' ') || 'no processes'} (health check: ${spec.healthcheck?.path ?? 'port accepts connections'})`,
      );
      const switchAt = Date.now();
      const driver = d.runtimes.forApp(app);
      const final = await rollout(driver, spec, {
        restart: row.kind === 'restart',
        timeoutMs: d.config.apps.startTimeoutMs + 15_000,
      });
      if (final.rollout.status === 'failed') {
        for (const l of final.rollout.logTail ?? []) log.push(`       ${l}`);
        throw new MinipaasError(
          'MINIPAAS_ERR_BUILD_FAILED',
          final.rollout.error ?? 'instances did not become healthy',
        );
      }
      const running = final.instances.filter((i) => i.status === 'running' && i.release === spec.release);
      for (const i of running)
        log.push(`       ${i.processType}.${i.id} pid ${i.pid}${i.port ? ` port ${i.port}` : ''}`);
      // Succeeded first: a rollback puts the app's env back before its release becomes the current one
      // (from then on the spec takes the app's env, spec-builder.ts), so the reconciler never sees a mix.
      if (row.kind !== 'restart') await d.releases.markSucceeded(release);
      await d.apps.setStatus(app.id, 'running', release.version);
      await this.markStopped(app.id, row.id);
      await say(
        `-----> v${release.version} is live at ${d.apps.urls(app.name).url} (rollout ${seconds(Date.now() - switchAt)})`,
      );
      if (row.kind !== 'restart') {
        await d.phases
          .runAfterSwitch(ctx)
          .catch((err: unknown) => log.push(`       postdeploy: ${(err as Error).message}`));
      }
      await log.flush();
      await d.deployments.transition(row.id, 'running');
      if (row.kind !== 'restart')
        await d.releases.prune(app).catch((err: unknown) => d.log.warn({ err }, 'prune failed'));
    } catch (err) {
      await log.flush().catch(() => undefined);
      if (release && row.kind !== 'restart' && !(err instanceof DeploymentAborted && isRetry(err.reason)))
        await d.releases.markFailed(release).catch(() => undefined);
      const fresh = await d.apps.get(app.id).catch(() => null);
      if (fresh)
        await d.apps.setStatus(fresh.id, fresh.current_release ? 'running' : 'failed').catch(() => undefined);
      throw err;
    }
  }

  /** Build stage: detect, run the build steps, publish the release dir, record the release. */
  /** Applies the source's minipaas.yaml: the runtime on the first deploy, a note about unknown keys. */
  async #applyManifest(
    app: AppRow,
    manifest: AppManifest | null,
    say: (line: string) => Promise<void>,
  ): Promise<AppRow> {
    if (!manifest) return app;
    if (manifest.unknownKeys.length)
      await say(`-----> ${APP_MANIFEST}: ignoring unknown settings ${manifest.unknownKeys.join(', ')}`);
    // processes, env, healthcheck and resources: on the app before its release snapshot is taken.
    app = await applyManifestConfig(this.#d.deployments.db, app, manifest, say);
    const runtime = manifestRuntime(app, manifest);
    if (runtime === app.runtime) return app;
    this.#d.runtimes.for(runtime); // a runtime this platform does not run fails the deploy clearly
    await say(`-----> ${APP_MANIFEST}: runtime ${runtime}`);
    return this.#d.apps.setRuntime(app.id, runtime);
  }

  async #build(row: DeploymentRow, app: AppRow, log: LogWriter, signal: AbortSignal): Promise<ReleaseRow> {
    const d = this.#d;
    const dir = row.source_dir;
    if (!dir) throw new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', 'the staged source is gone');
    const detected = await detectSource(dir, row.command, d.nodeBin);
    await log.say(`-----> Detected stack: ${detected.stack} (${Object.keys(detected.commands).join(', ')})`);
    const started = Date.now();
    await d.builder.build({ app, dir, detected, log, signal });
    if (signal.aborted) throw new DeploymentAborted(signal.reason);
    const appJson = d.readAppJson ? await d.readAppJson(dir) : null;
    const configured = await d.phases.prepareConfig(app, appJson);
    const version = await d.releases.nextVersion(app.id);
    const published = await d.builder.publish(configured, dir, version, detected);
    const release = await d.releases.create({
      app: configured,
      version,
      dir: published.dir,
      stack: detected.stack,
      commands: detected.commands,
      env: published.env,
      source: row.source === 'command' ? 'command' : 'upload',
      appJson,
      releaseCommand: detected.releaseCommand,
      deploymentId: row.id,
    });
    await d.deployments.setRelease(row.id, version);
    await log.say(`-----> Release v${version} created (build ${seconds(Date.now() - started)})`);
    return release;
  }

  /** The deployments that were serving the app, except `keep`, are `stopped` (superseded or app stopped). */
  async markStopped(appId: string, keep?: string): Promise<void> {
    await markStopped(this.#d.deployments, appId, keep);
  }

  /** Removes a deployment's staged source. */
  static async dropSource(row: Pick<DeploymentRow, 'source_dir'>): Promise<void> {
    if (row.source_dir) await rm(row.source_dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** A phase's duration for the deploy log: `0.4s`. */
function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** Abort reasons that put the deployment back in the queue (the worker is stopping). */
export function isRetry(reason: unknown): boolean {
  return reason === 'shutdown';
}

export async function markStopped(deployments: DeploymentStore, appId: string, keep?: string): Promise<void> {
  let q = deployments.db
    .updateTable('deployments')
    .set({ status: 'stopped' })
    .where('app_id', '=', appId)
    .where('status', '=', 'running');
  if (keep) q = q.where('id', '!=', keep);
  const rows = await q.returning('id').execute();
  for (const r of rows) await deployments.notify(r.id);
}
