/**
 * Formation limits: how many process types and instances one app, and the whole platform, may
 * run. Checked before anything is written, so a request over a limit changes nothing.
 */
import { type MinipaasConfig, MinipaasError, type ProcessSpec } from '@minipaas/core';

/** The limits, from `config.apps`. */
export type FormationLimits = Pick<
  MinipaasConfig['apps'],
  'maxInstancesPerApp' | 'maxInstances' | 'maxProcessTypes'
>;

/** Total instances of a formation. */
export function instanceTotal(processes: Readonly<Record<string, Pick<ProcessSpec, 'instances'>>>): number {
  let n = 0;
  for (const p of Object.values(processes)) n += p.instances;
  return n;
}

/**
 * Throws MINIPAAS_ERR_LIMIT_EXCEEDED (409) naming the numbers when `processes` of app `app` would
 * exceed a limit, given `elsewhere` instances run by the other apps.
 */
export function checkFormation(
  app: string,
  processes: Readonly<Record<string, Pick<ProcessSpec, 'instances'>>>,
  elsewhere: number,
  limits: FormationLimits,
): void {
  const types = Object.keys(processes).length;
  if (types > limits.maxProcessTypes) {
    throw new MinipaasError(
      'MINIPAAS_ERR_LIMIT_EXCEEDED',
      `app "${app}" would have ${types} process types; at most ${limits.maxProcessTypes} are allowed (apps.maxProcessTypes)`,
      { details: { limit: 'apps.maxProcessTypes', max: limits.maxProcessTypes, requested: types } },
    );
  }
  const total = instanceTotal(processes);
  if (total > limits.maxInstancesPerApp) {
    throw new MinipaasError(
      'MINIPAAS_ERR_LIMIT_EXCEEDED',
      `app "${app}" would run ${total} instances; at most ${limits.maxInstancesPerApp} per app are allowed (apps.maxInstancesPerApp)`,
      { details: { limit: 'apps.maxInstancesPerApp', max: limits.maxInstancesPerApp, requested: total } },
    );
  }
  if (total + elsewhere > limits.maxInstances) {
    throw new MinipaasError(
      'MINIPAAS_ERR_LIMIT_EXCEEDED',
      `the platform would run ${total + elsewhere} instances (${elsewhere} in other apps + ${total} in "${app}"); at most ${limits.maxInstances} are allowed (apps.maxInstances)`,
      {
        details: {
          limit: 'apps.maxInstances',
          max: limits.maxInstances,
          requested: total + elsewhere,
          elsewhere,
        },
      },
    );
  }
}
