/**
 * Source stage: turns what the client sent into a staged source tree under MINIPAAS_HOME/builds/<id>,
 * synchronously in the request, so bad input (a broken archive, nothing to run, a limit exceeded) is a 4xx
 * before anything is queued. The build worker later detects the stack again from the same tree.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { MinipaasError } from '@minipaas/core';
import type { AppRow, AppService } from '../services/app-service.ts';
import { effectiveProcesses } from '../services/spec-builder.ts';
import { manifestRuntime, readAppManifest } from './app-manifest-source.ts';
import { dockerfileCommands, hasDockerfile } from './dockerfile-source.ts';
import { type DetectedStack, detectStack } from './stack-detector.ts';
import { stageUpload, type UploadLimits } from './upload-staging.ts';

export type DeploySource =
  | {
      kind: 'upload';
      /** The request body: a gzipped (or plain) tarball, streamed to disk and unpacked within `uploads.*`. */
      archive: Readable;
      /** Overrides the detected web command. */
      command?: string | undefined;
    }
  | { kind: 'command'; command: string }
  | {
      kind: 'git';
      /** Writes the commit's tree into the (new) staging directory and names the commit (git/git-service.ts). */
      checkout(dir: string): Promise<{ sha: string; message: string }>;
      command?: string | undefined;
    }
  | { kind: 'restart' };

/** A source staged for the build worker. */
export interface StagedSource {
  /** The source tree (MINIPAAS_HOME/builds/<deployment id>). */
  dir: string;
  /** The web command override (`deploy --command`) or the command of a command deploy. */
  command: string | null;
  /** The commit of a git source. */
  commit?: { sha: string; message: string };
}

/** Where a deployment's source is staged. */
export function stagingDir(home: string, deploymentId: string): string {
  return join(home, 'builds', deploymentId);
}

/** Stack detection with the command override: a tree with no detectable stack runs the command. */
export async function detectSource(
  dir: string,
  command: string | null,
  nodeBin: string,
): Promise<DetectedStack> {
  const plain: DetectedStack = {
    stack: 'command',
    commands: { web: command ?? '' },
    steps: [],
    env: {},
    releaseCommand: null,
  };
  try {
    const detected = await detectStack(dir, process.env.PATH ?? '', nodeBin);
    if (command) detected.commands.web = command;
    return detected;
  } catch (err) {
    if (command && err instanceof MinipaasError && err.code === 'MINIPAAS_ERR_NO_STACK') return plain;
    throw err;
  }
}

export interface StageOptions {
  home: string;
  uploads: UploadLimits;
  apps: AppService;
  nodeBin: string;
}

/**
 * Stages an upload or a command deploy for deployment `id`, validating it (stack detected, limits
 * respected). Nothing is left on disk when it throws.
 */
export async function stageSource(
  app: AppRow,
  id: string,
  source: Exclude<DeploySource, { kind: 'restart' }>,
  opts: StageOptions,
): Promise<StagedSource> {
  const dir = stagingDir(opts.home, id);
  const command = source.command ?? null;
  let commit: StagedSource['commit'];
  try {
    if (source.kind === 'upload') await stageUpload(source.archive, dir, opts.uploads);
    else if (source.kind === 'git') commit = await source.checkout(dir);
    else await mkdir(dir, { recursive: true });
    // minipaas.yaml may choose the runtime (first deploy) and the Dockerfile; a bad one is a 400 here.
    const manifest = await readAppManifest(dir);
    const runtime = manifestRuntime(app, manifest);
    // A docker app with its own Dockerfile needs no detected stack (docs/docker.md).
    const detected =
      (runtime === 'docker' || runtime === 'swarm') && hasDockerfile(dir, manifest?.dockerfile)
        ? await dockerfileCommands(dir, command)
        : await detectSource(dir, command, opts.nodeBin);
    // Over a limit (too many process types or instances): refuse now, before anything is queued.
    await opts.apps.checkLimits(app, effectiveProcesses(app, { commands: detected.commands }));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { dir, command, ...(commit ? { commit } : {}) };
}
