import type { AppSpec, ProcessSpec } from '@minipaas/core';
import type { Selectable } from 'kysely';
import type { AppsTable, ReleasesTable } from '../store/schema.ts';

/** Process types that are not long-running and are never started as instances. */
const ONE_OFF_TYPES = new Set(['release']);

/** Instance count a process type gets when the user has not scaled it. */
export function defaultInstances(_type: string): number {
  return 1;
}

/** Effective process table: release commands, overridden by the app's commands and counts. */
export function effectiveProcesses(
  app: Pick<Selectable<AppsTable>, 'processes'>,
  release: Pick<Selectable<ReleasesTable>, 'commands'> | null,
): Record<string, ProcessSpec> {
  const out: Record<string, ProcessSpec> = {};
  const types = new Set([...Object.keys(release?.commands ?? {}), ...Object.keys(app.processes)]);
  for (const type of types) {
    if (ONE_OFF_TYPES.has(type)) continue;
    const command = app.processes[type]?.command ?? release?.commands[type];
    if (!command) continue;
    out[type] = { command, instances: app.processes[type]?.instances ?? defaultInstances(type) };
  }
  return out;
}

/** The desired state the runtime gets for an app at a release. */
export function buildSpec(app: Selectable<AppsTable>, release: Selectable<ReleasesTable>): AppSpec {
  const spec: AppSpec = {
    name: app.name,
    release: `v${release.version}`,
    dir: release.dir,
    env: { ...release.env, ...app.env },
    processes: effectiveProcesses(app, release),
  };
  if (app.healthcheck_path) spec.healthcheck = { path: app.healthcheck_path };
  return spec;
}
