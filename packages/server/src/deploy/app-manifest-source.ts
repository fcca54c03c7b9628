/**
 * The staged source's `minipaas.yaml` (packages/core app-manifest.ts): read once where the upload is staged
 * (so a bad file is a 400 before anything is queued) and again by the build worker, which applies it.
 */
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import { APP_MANIFEST, type AppManifest, parseAppManifest } from '@minipaas/core/app-manifest';
import type { AppRow } from '../services/app-service.ts';

/** Larger manifests are refused: the file holds a few settings. */
const MAX_MANIFEST_BYTES = 64 * 1024;

/** The source's `minipaas.yaml`, or null without one. A symlink or a directory of that name is refused. */
export async function readAppManifest(dir: string): Promise<AppManifest | null> {
  const file = join(dir, APP_MANIFEST);
  const st = await lstat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!st) return null;
  if (!st.isFile())
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `${APP_MANIFEST} must be a regular file (not a link or directory)`,
    );
  if (st.size > MAX_MANIFEST_BYTES)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `${APP_MANIFEST} is ${st.size} bytes; at most ${MAX_MANIFEST_BYTES} are read`,
    );
  return parseAppManifest(await readFile(file, 'utf8'));
}

/**
 * The runtime a deploy of `app` with `manifest` runs on. The manifest chooses it while the app has no
 * release yet; afterwards a different `runtime:` is refused rather than silently ignored or switched under
 * running instances.
 */
export function manifestRuntime(
  app: Pick<AppRow, 'name' | 'runtime' | 'current_release'>,
  manifest: AppManifest | null,
): 'process' | 'docker' | 'swarm' {
  const current = app.runtime === 'docker' || app.runtime === 'swarm' ? app.runtime : 'process';
  const wanted = manifest?.runtime;
  if (!wanted || wanted === current) return current;
  if (app.current_release === null) return wanted;
  throw new MinipaasError(
    'MINIPAAS_ERR_VALIDATION',
    `${APP_MANIFEST} asks for runtime ${wanted}, but ${app.name} has run on ${current} since its first release; ` +
      `remove the runtime line or deploy to a new app`,
  );
}
