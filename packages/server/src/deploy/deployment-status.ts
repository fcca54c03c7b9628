/**
 * The deployment state machine, written down once:
 * `queued → building → deploying → running | failed | cancelled`; a `running` deployment becomes `stopped`
 * when a later one supersedes it (or the app is stopped). Restart and rollback deployments skip `building`.
 * A build cut off by a platform failure goes back to `queued` for its retry.
 */
import type { DeploymentStatus } from '@minipaas/core';

export const TERMINAL_STATUSES: ReadonlySet<DeploymentStatus> = new Set([
  'running',
  'failed',
  'cancelled',
  'stopped',
]);

/** Statuses a deployment is in while the build worker owns it. */
export const ACTIVE_STATUSES = ['building', 'deploying'] as const satisfies readonly DeploymentStatus[];

const ALLOWED: Readonly<Record<DeploymentStatus, readonly DeploymentStatus[]>> = {
  queued: ['building', 'deploying', 'failed', 'cancelled'],
  building: ['deploying', 'failed', 'cancelled', 'queued'],
  deploying: ['running', 'failed', 'cancelled', 'queued'],
  running: ['stopped'],
  failed: [],
  cancelled: [],
  stopped: [],
};

export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.has(status as DeploymentStatus);
}

/** The statuses a deployment may be in right before `to` (used as the WHERE of every status change). */
export function allowedFrom(to: DeploymentStatus): DeploymentStatus[] {
  return (Object.keys(ALLOWED) as DeploymentStatus[]).filter((from) => ALLOWED[from].includes(to));
}
