/**
 * Builds an app's image with the Engine API from a tar stream of its staged source: the app's own
 * Dockerfile (at the root or a configured path), else a Dockerfile generated from the detected stack on the
 * platform's base images (`minipaas images:bootstrap`). Images are tagged `minipaas/APP:vN`; the previous
 * image is the build cache source unless the app turned `buildCache` off; old tags beyond `keepImages`
 * are removed (rollback to a kept release starts its image without building).
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, normalize, sep } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';
import { pack } from 'tar-fs';
import { BASE_IMAGE, NODE_IMAGE } from './images-bootstrap.ts';
import { type OneOffResult, type OneOffRun, runOneOff } from './one-off.ts';

/** Name of the Dockerfile the builder writes into a staged source without one. */
export const GENERATED_DOCKERFILE = '.minipaas.Dockerfile';

/** What the builder needs to know about the detected stack (the process runtime's detection). */
export interface StackInfo {
  stack: string;
  /** Process type → command line. */
  commands: Record<string, string>;
}

/** Options of one {@link DockerBuilder.build}. */
export interface DockerBuildRun {
  app: string;
  version: number;
  /** The staged source tree (the builder may add its generated Dockerfile to it). */
  dir: string;
  /** Dockerfile path relative to `dir` (default `Dockerfile`). */
  dockerfile?: string;
  /** The detected stack, used when the source has no Dockerfile. */
  detected?: StackInfo | null;
  /** Use the previous image as cache (default true). */
  buildCache?: boolean;
  /** One line of build output (streamed to the deploy log). */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

export interface DockerBuilderOptions {
  docker: Docker;
  /** Base image of generated Dockerfiles (default {@link BASE_IMAGE}). */
  baseImage?: string;
  /** Base image of generated Node Dockerfiles (default {@link NODE_IMAGE}). */
  nodeImage?: string;
  /** Image tags kept per app (config `retention.keepImages`, default 5). */
  keepImages?: number;
}

/** The image repository of an app: `minipaas/APP`. */
export function imageRepo(app: string): string {
  return `minipaas/${app}`;
}

export class DockerBuilder {
  readonly #o: DockerBuilderOptions;

  constructor(o: DockerBuilderOptions) {
    this.#o = o;
  }

  /** Whether a source tree brings its own Dockerfile. */
  static hasDockerfile(dir: string, dockerfile = 'Dockerfile'): boolean {
    return existsSync(join(dir, safeRelative(dockerfile)));
  }

  /** Builds `minipaas/APP:vN`; resolves with the image reference. */
  async build(run: DockerBuildRun): Promise<{ ref: string; generated: boolean }> {
    const docker = this.#o.docker;
    let dockerfile = safeRelative(run.dockerfile ?? 'Dockerfile');
    let generated = false;
    if (!existsSync(join(run.dir, dockerfile))) {
      if (run.dockerfile)
        throw new MinipaasError(
          'MINIPAAS_ERR_BUILD_FAILED',
          `no Dockerfile at ${run.dockerfile} in the source`,
        );
      if (!run.detected)
        throw new MinipaasError('MINIPAAS_ERR_NO_STACK', 'no Dockerfile and no detected stack');
      await writeFile(join(run.dir, GENERATED_DOCKERFILE), this.generate(run.detected, run.dir));
      dockerfile = GENERATED_DOCKERFILE;
      generated = true;
      run.onLine?.(`Generated a Dockerfile for the ${run.detected.stack} stack`);
    }
    const repo = imageRepo(run.app);
    const ref = `${repo}:v${run.version}`;
    const previous = run.buildCache === false ? [] : await this.tags(run.app);
    const tar = pack(run.dir, { ignore: (name) => name.split(sep).includes('.git') });
    const stream = await docker.buildImage(tar as unknown as NodeJS.ReadableStream, {
      t: ref,
      dockerfile,
      rm: true,
      forcerm: true,
      ...(run.buildCache === false ? { nocache: true } : {}),
      ...(previous.length > 0 ? { cachefrom: JSON.stringify(previous.slice(0, 1)) } : {}),
      labels: { 'minipaas.app': run.app, 'minipaas.release': `v${run.version}` },
    });
    const onAbort = () => (stream as unknown as { destroy(): void }).destroy();
    run.signal?.addEventListener('abort', onAbort);
    try {
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(
          stream,
          (err: Error | null) => (err ? reject(err) : resolve()),
          (ev: { stream?: string; error?: string; status?: string }) => {
            if (ev.error)
              reject(new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', `docker build: ${ev.error.trim()}`));
            const text = ev.stream ?? ev.status;
            if (text) for (const l of text.split('\n')) if (l.trim()) run.onLine?.(l.trimEnd());
          },
        );
      });
    } catch (err) {
      if (run.signal?.aborted) throw new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', 'the build was stopped');
      if (err instanceof MinipaasError) throw err;
      throw new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', `docker build: ${(err as Error).message}`);
    } finally {
      run.signal?.removeEventListener('abort', onAbort);
    }
    return { ref, generated };
  }

  /** A Dockerfile for a source without one, from the detected stack. */
  generate(d: StackInfo, dir: string): string {
    const node = existsSync(join(dir, 'package.json'));
    const base = node ? (this.#o.nodeImage ?? NODE_IMAGE) : (this.#o.baseImage ?? BASE_IMAGE);
    const lines = [`FROM ${base}`, 'WORKDIR /app', 'COPY . /app'];
    if (node) {
      if (existsSync(join(dir, 'package-lock.json'))) lines.push('RUN npm ci --omit=dev');
      else if (hasDependencies(dir)) lines.push('RUN npm install --omit=dev');
    }
    lines.push('ENV NODE_ENV=production');
    const web = d.commands.web;
    if (web) lines.push(`CMD ["/bin/sh", "-c", ${JSON.stringify(web)}]`);
    return `${lines.join('\n')}\n`;
  }

  /** The app's `vN` tags, newest first. */
  /** Runs a release's one-off command in its image (release phase on the docker runtime). */
  runOneOff(run: OneOffRun): Promise<OneOffResult> {
    return runOneOff(this.#o.docker, run);
  }

  async tags(app: string): Promise<string[]> {
    const repo = imageRepo(app);
    const images = await this.#o.docker.listImages({ filters: { reference: [repo] } });
    const tags = images
      .flatMap((i) => i.RepoTags ?? [])
      .filter((t) => /^.+:v\d+$/.test(t) && t.startsWith(`${repo}:`));
    return tags.sort((a, b) => version(b) - version(a));
  }

  /** Removes the app's tags beyond the newest `keepImages` except those in `keep` (releases still kept). */
  async prune(app: string, keep: string[] = []): Promise<string[]> {
    const n = this.#o.keepImages ?? 5;
    const removed: string[] = [];
    for (const t of (await this.tags(app)).slice(n)) {
      if (keep.includes(t)) continue;
      try {
        await this.#o.docker.getImage(t).remove({ noprune: false });
        removed.push(t);
      } catch (err) {
        // in use by a container (409): kept until the next prune
        if ((err as { statusCode?: number }).statusCode !== 409) throw err;
      }
    }
    return removed;
  }
}

function version(tag: string): number {
  return Number(tag.slice(tag.lastIndexOf(':v') + 2));
}

function hasDependencies(dir: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    return Object.keys(pkg.dependencies ?? {}).length > 0;
  } catch {
    return false;
  }
}

/** A Dockerfile path inside the source: relative, no `..`, no NUL. */
export function safeRelative(p: string): string {
  const n = normalize(p);
  if (p.includes('\0') || n.startsWith('/') || n === '..' || n.startsWith(`..${sep}`) || p.length > 256)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `the Dockerfile path must stay inside the source: ${p}`,
    );
  return n;
}
