/**
 * `/api/v1/nodes` and `/api/v1/cron`: the nodes of the swarm the `swarm` runtime runs on (docs/swarm.md): list them with
 * role, availability and tasks; drain one (Swarm moves its tasks to the other nodes) or activate it again;
 * the services scheduled by swarm-cronjob labels with their runs.
 * Answers 400 `MINIPAAS_ERR_NOT_AVAILABLE` when the platform has no swarm runtime (`swarm.host` unset).
 */
import { MinipaasError, type RuntimeDriver } from '@minipaas/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';

/**
 * What the swarm runtime driver (`@minipaas/runtime-swarm`) offers for nodes; typed here so the API does
 * not load dockerode unless the swarm runtime is configured.
 */
interface SwarmNodesApi {
  nodes(): Promise<unknown[]>;
  setNodeAvailability(ref: string, availability: 'active' | 'drain'): Promise<unknown>;
  cronJobs(): Promise<unknown[]>;
}

const hasNodes = (d: RuntimeDriver | undefined): d is RuntimeDriver & SwarmNodesApi =>
  typeof (d as Partial<SwarmNodesApi> | undefined)?.nodes === 'function' &&
  typeof (d as Partial<SwarmNodesApi> | undefined)?.setNodeAvailability === 'function' &&
  typeof (d as Partial<SwarmNodesApi> | undefined)?.cronJobs === 'function';

/**
 * Node ids are 25 base-32 characters, hostnames follow RFC 1123, names of nodes sharing a hostname are
 * `HOSTNAME/ID12`. Anything else is refused before Swarm is asked.
 */
const NODE_REF = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,252}$/;

function swarm(ctx: ServerContext): SwarmNodesApi {
  const driver = ctx.runtimes.names().includes('swarm') ? ctx.runtimes.for('swarm') : undefined;
  if (!hasNodes(driver))
    throw new MinipaasError(
      'MINIPAAS_ERR_NOT_AVAILABLE',
      'the swarm runtime is not configured on this platform (set swarm.host, see docs/swarm.md)',
    );
  return driver;
}

function nodeRef(raw: string): string {
  if (!NODE_REF.test(raw))
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'a node is named by its id, id prefix or hostname');
  return raw;
}

export function nodeRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/api/v1/nodes', { config: { action: 'platform:read' } }, async () => ({
    nodes: await swarm(ctx).nodes(),
  }));

  // Services run on a schedule (swarm-cronjob labels; minipaasd's scheduler starts them) and their runs.
  app.get('/api/v1/cron', { config: { action: 'platform:read' } }, async () => ({
    jobs: await swarm(ctx).cronJobs(),
  }));

  app.post<{ Params: { node: string } }>(
    '/api/v1/nodes/:node/drain',
    { config: { action: 'platform:manage' } },
    async (req) => ({ node: await swarm(ctx).setNodeAvailability(nodeRef(req.params.node), 'drain') }),
  );

  app.post<{ Params: { node: string } }>(
    '/api/v1/nodes/:node/activate',
    { config: { action: 'platform:manage' } },
    async (req) => ({ node: await swarm(ctx).setNodeAvailability(nodeRef(req.params.node), 'active') }),
  );
}
