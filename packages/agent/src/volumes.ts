/**
 * Volumes of process-runtime apps: host directories (`MINIPAAS_HOME/volumes/{project}/{volume}`, created
 * by the control plane) that the app's instances find in `MINIPAAS_VOLUME_<NAME>`. A root agent gives each
 * directory to the app's uid (the whole tree when its top belongs to someone else, e.g. after a restore or
 * a uid change) and makes the way to it traversable. The agent never deletes volume data.
 */
import { mkdir } from 'node:fs/promises';
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
