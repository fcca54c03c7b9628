/**
 * `deploy build`: builds the image of every compose service with a `build:` section through the Engine
 * API, tags it `REGISTRY/STACK/SERVICE:TAG`, pushes it to the environment's private registry and
 * writes the reference into the override compose file so the next rollout runs it.
 */
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';
import { create as createTar } from 'tar';
import { contextFiles } from './build-context.ts';
import { ComposeFile, mergedServices } from './compose-file.ts';
import type { SwarmEnvironment } from './swarm-environment.ts';

/** Options of {@link buildImages}. */
export interface BuildOptions {
  /** Only these services (default: every service with a build section). */
  services?: readonly string[];
  /** Image tag (default: UTC time, `20261123-231005`). */
  tag?: string;
  /** Build and tag only: no push, no compose change. */
  noPush?: boolean;
  /** Build output and progress lines. */
  onProgress?: (line: string) => void;
}

/** One built image. */
export interface BuiltImage {
  service: string;
  image: string;
  pushed: boolean;
}

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** The default tag: the UTC time. */
export function timeTag(now = new Date()): string {
  return now
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '-');
}

interface StreamEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** Follows a build/push stream; rejects with the daemon's error message. */
function follow(docker: Docker, stream: NodeJS.ReadableStream, say: (l: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: string | undefined;
    docker.modem.followProgress(
      stream,
      (err: Error | null) => {
        if (err) return reject(err);
        if (failure) return reject(new Error(failure));
        resolve();
      },
      (ev: StreamEvent) => {
        if (ev.error || ev.errorDetail) failure = ev.errorDetail?.message ?? ev.error ?? 'failed';
        const text = (ev.stream ?? ev.status ?? '').trimEnd();
        if (text) say(text);
      },
    );
  });
}

/** Builds (and pushes) the stack's images. */
export async function buildImages(
  env: SwarmEnvironment,
  docker: Docker,
  opts: BuildOptions = {},
): Promise<BuiltImage[]> {
  const tag = opts.tag ?? timeTag();
  if (!TAG_RE.test(tag)) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `bad tag ${JSON.stringify(tag)}`);
  const say = opts.onProgress ?? (() => {});
  const merged = mergedServices(env.composeFiles.filter(existsSync).map((p) => ComposeFile.load(p)));
  const wanted = opts.services?.length
    ? opts.services
    : [...merged.values()].filter((s) => s.build).map((s) => s.name);
  if (wanted.length === 0)
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'no service has a build section: nothing to build');
  const out: BuiltImage[] = [];
  for (const name of wanted) {
    const svc = merged.get(name);
    if (!svc)
      throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `service ${name} is not in the compose files`);
    if (!svc.build)
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `service ${name} has no build section`);
    const b = typeof svc.build === 'string' ? { context: svc.build } : svc.build;
    const context = isAbsolute(b.context ?? '.') ? (b.context as string) : join(env.dir, b.context ?? '.');
    if (!existsSync(context) || !statSync(context).isDirectory())
      throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `build context of ${name} not found: ${context}`);
    const dockerfile = b.dockerfile ?? 'Dockerfile';
    if (
      relative(context, join(context, dockerfile)).startsWith('..') ||
      !existsSync(join(context, dockerfile))
    )
      throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `${dockerfile} not found in ${context}`);
    const repo = `${env.registry ? `${env.registry}/` : ''}${env.stack}/${name.toLowerCase()}`;
    const image = `${repo}:${tag}`;
    say(`-----> Building ${name} as ${image}`);
    const tar = createTar({ cwd: context, portable: true, gzip: false }, contextFiles(context, dockerfile));
    try {
      await follow(
        docker,
        await docker.buildImage(tar as unknown as NodeJS.ReadableStream, {
          t: image,
          dockerfile,
          rm: true,
          forcerm: true,
        }),
        say,
      );
    } catch (err) {
      throw new MinipaasError(
        'MINIPAAS_ERR_BUILD_FAILED',
        `build of ${name} failed: ${err instanceof Error ? err.message.trim() : String(err)}`,
      );
    }
    let pushed = false;
    if (env.registry && !opts.noPush) {
      say(`-----> Pushing ${image}`);
      try {
        const stream = (await docker
          .getImage(image)
          .push({ authconfig: {} } as never)) as unknown as NodeJS.ReadableStream;
        await follow(docker, stream, () => {});
      } catch (err) {
        throw new MinipaasError(
          'MINIPAAS_ERR_BUILD_FAILED',
          `push of ${image} to ${env.registry} failed: ${err instanceof Error ? err.message.trim() : String(err)}`,
        );
      }
      pushed = true;
    }
    out.push({ service: name, image, pushed });
  }
  if (!opts.noPush) {
    const override = ComposeFile.load(env.overrideCompose);
    for (const b of out) override.set(['services', b.service, 'image'], b.image);
    override.save();
  }
  return out;
}
