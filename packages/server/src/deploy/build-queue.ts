/**
 * The durable build queue: one `@minipaas/sql` queue (`minipaas_builds`) in the platform's own database,
 * one message per deployment. The deployment row stays the truth about state (queued, cancelled,
 * superseded...); the message is the durable job a build worker claims with a lease.
 */
import { migrate, Queue, type SqlExecutor } from '@minipaas/sql';

export const BUILD_QUEUE = 'minipaas_builds';

/** A build job: the deployment to run. */
export interface BuildJob {
  deploymentId: string;
}

/** How long a claimed job stays leased without a heartbeat (the worker extends it while it holds it). */
export const BUILD_LEASE_MS = 30_000;

/** Installs @minipaas/sql (idempotent) and creates the build queue if missing. */
export async function installBuildQueue(db: SqlExecutor): Promise<void> {
  await migrate(db);
  // Deliveries are not build attempts (a job waiting for its app's running build is held, not failed):
  // attempts are counted on the deployment, so the queue never dead-letters a job by itself.
  await new Queue<BuildJob>(db, BUILD_QUEUE).create({
    visibilityTimeoutMs: BUILD_LEASE_MS,
    maxAttempts: 1000,
  });
}

export function buildQueue(db: SqlExecutor): Queue<BuildJob> {
  return new Queue<BuildJob>(db, BUILD_QUEUE);
}
