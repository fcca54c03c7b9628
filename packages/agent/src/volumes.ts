/**
 * Volumes of process-runtime apps: host directories (`MINIPAAS_HOME/volumes/{project}/{volume}`, created
 * by the control plane) that the app's instances find in `MINIPAAS_VOLUME_<NAME>`. A root agent gives each
 * directory to the app's uid (the whole tree when its top belongs to someone else, e.g. after a restore or
 * a uid change) and makes the way to it traversable. The agent never deletes volume data.
 *
 * Containers see a volume at its mount path, and their working directory is usually `/app`; a process
 * instance runs in its release directory instead. So that an app written for `/app/storage` can use the
 * relative path `storage/` on both runtimes, a mount path under `/app/` also becomes a symbolic link in the
 * release directory (`<release>/storage` → the volume's directory), unless the release has something of
 * its own at that path.
 */
import { lstat, mkdir, readlink, symlink, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type AgentVolume, volumeEnvName } from '@minipaas/core';
import { ensureReachable, ownDir, type RunAs } from '@minipaas/runtime-process/run-as';

/** Creates and hands over the volume directories of an app before its instances start. */
export async function prepareVolumes(home: string, volumes: AgentVolume[], who: RunAs | null): Promise<void> {
  for (const v of volumes) {
    if (!who) {
      await mkdir(v.dir, { recursive: true, mode: 0o750 });
      continue;
    }
    await ownDir(v.dir, who, 0o750);
    await ensureReachable(home, v.dir, who);
  }
}

/** `MINIPAAS_VOLUME_<NAME>` for every volume. */
export function volumeEnv(volumes: AgentVolume[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of volumes) env[volumeEnvName(v.name)] = v.dir;
  return env;
}

/** A mount path `/app/<rel>` as a safe relative path, or null. */
function appRelative(target: string | undefined): string | null {
  if (!target?.startsWith('/app/')) return null;
  const rel = target.slice('/app/'.length);
  const segs = rel.split('/');
  if (segs.some((s) => s === '' || s === '.' || s === '..')) return null;
  return rel;
}

/**
 * Links each `/app/...` mount path into the release directory (see the module comment). Returns a note
 * for every mount path it had to leave alone (the release has its own file there).
 */
export async function linkMountPaths(
  home: string,
  releaseDir: string,
  volumes: AgentVolume[],
): Promise<string[]> {
  const notes: string[] = [];
  const ours = resolve(home, 'volumes');
  // Only releases the platform built (under MINIPAAS_HOME) are changed, never a directory of the user's.
  if (!resolve(releaseDir).startsWith(`${resolve(home)}/`)) return notes;
  for (const v of volumes) {
    const rel = appRelative(v.target);
    if (rel === null) continue;
    const link = join(releaseDir, rel);
    const parent = await lstat(dirname(link)).catch(() => null);
    if (!parent?.isDirectory()) {
      notes.push(
        `volume ${v.name}: ${v.target} is not linked into the release (no directory ${dirname(rel) || '.'} there)`,
      );
      continue;
    }
    const st = await lstat(link).catch(() => null);
    if (st?.isSymbolicLink()) {
      const to = await readlink(link);
      if (to === v.dir) continue;
      if (!to.startsWith(`${ours}/`)) {
        notes.push(`volume ${v.name}: the release's own link ${rel} is kept (use ${volumeEnvName(v.name)})`);
        continue;
      }
      await unlink(link); // a link to another volume's directory, made by an earlier agent
    } else if (st) {
      notes.push(
        `volume ${v.name}: the release has its own ${rel}, so the volume is only in ${volumeEnvName(v.name)}`,
      );
      continue;
    }
    await symlink(v.dir, link);
  }
  return notes;
}
