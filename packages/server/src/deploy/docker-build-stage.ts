/**
 * Build stage of apps on the `docker` runtime: the staged source becomes the image `minipaas/APP:vN`
 * (its own Dockerfile, else one generated from the detected stack) and the release records that image as
 * its artifact, so a rollback starts the old image without building (docs/docker.md).
 */
import { type MinipaasConfig, MinipaasError, releaseDir } from '@minipaas/core';
import type { AppManifest } from '@minipaas/core/app-manifest';
import type { DockerBuilder } from '@minipaas/runtime-docker';
import type { AppRow } from '../services/app-service.ts';
import type { DeploymentRow, LogWriter } from './deployment-store.ts';
import { dockerfileCommands, hasDockerfile } from './dockerfile-source.ts';
import type { PipelinePhases, PipelineReleases, ReleaseRow } from './pipeline-releases.ts';
import { detectSource } from './source-stage.ts';

export interface DockerBuildStageDeps {
  builder: DockerBuilder;
  releases: PipelineReleases;
  phases: PipelinePhases;
  config: MinipaasConfig;
  readAppJson?: (dir: string) => Promise<unknown>;
  nodeBin: string;
}

/** Builds the deployment's staged source into an image and records the release. */
export async function buildDockerRelease(
  d: DockerBuildStageDeps,
  row: DeploymentRow,
  app: AppRow,
  log: LogWriter,
  signal: AbortSignal,
  manifest: AppManifest | null = null,
): Promise<{ release: ReleaseRow; app: AppRow }> {
  const dir = row.source_dir;
  if (!dir) throw new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', 'the staged source is gone');
  const started = Date.now();
  const own = hasDockerfile(dir, manifest?.dockerfile);
  let stack = 'dockerfile';
  let commands: Record<string, string>;
  let releaseCommand: string | null;
  if (own) {
    ({ commands, releaseCommand } = await dockerfileCommands(dir, row.command));
  } else {
    const detected = await detectSource(dir, row.command, d.nodeBin);
    stack = detected.stack;
    commands = detected.commands;
    releaseCommand = detected.releaseCommand;
  }
  const cache = manifest?.buildCache ?? true;
  await log.say(
    `-----> Building image (${own ? (manifest?.dockerfile ?? 'Dockerfile') : `generated for the ${stack} stack`}${cache ? '' : ', no build cache'})`,
  );
  const appJson = d.readAppJson ? await d.readAppJson(dir) : null;
  const configured = await d.phases.prepareConfig(app, appJson);
  const version = await d.releases.nextVersion(app.id);
  const built = await d.builder.build({
    app: app.name,
    version,
    dir,
    ...(manifest?.dockerfile ? { dockerfile: manifest.dockerfile } : {}),
    buildCache: cache,
    detected: { stack, commands },
    onLine: (l) => log.push(`       ${l}`),
    signal,
  });
  const release = await d.releases.create({
    app: configured,
    version,
    // No directory: the image is the artifact (a path that never exists, so retention removes nothing).
    dir: releaseDir(d.config.home, app.name, version),
    artifact: { kind: 'image', ref: built.ref },
    stack,
    commands,
    env: {},
    source: row.source === 'command' ? 'command' : 'upload',
    appJson,
    releaseCommand,
    deploymentId: row.id,
  });
  await log.say(
    `-----> Release v${version} created: image ${built.ref} (build ${((Date.now() - started) / 1000).toFixed(1)}s)`,
  );
  await d.builder
    .prune(app.name)
    .catch((err: unknown) => log.push(`       image retention: ${(err as Error).message}`));
  return { release, app: configured };
}
