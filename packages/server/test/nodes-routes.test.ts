/**
 * `/api/v1/nodes` in-process (`app.inject`): without the swarm runtime a clear 400; with a SwarmDriver on the
 * local Docker engine's single-node swarm (joined for the test and left by the last run out, see
 * packages/swarm/test/helpers/lab.ts) it lists the node, refuses unknown or malformed node names without
 * touching anything, and needs a token. Draining a real node is covered on a two-node swarm in
 * packages/runtime-swarm/test/swarm-runtime.test.ts (draining this engine's only node would stop other tests).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import { SwarmDriver } from '@minipaas/runtime-swarm';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, ensureSwarm, missingForSwarm } from '../../swarm/test/helpers/lab.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

const missing = await missingForSwarm([]);
if (missing && process.env.CI) throw new Error(`CI needs the Docker engine for the nodes API: ${missing}`);

async function controlPlane(home: string, withSwarm: boolean): Promise<ControlPlane> {
  const config = await loadConfig({ MINIPAAS_HOME: home, MINIPAAS_LOG_LEVEL: 'silent' });
  return createControlPlane({
    config,
    drivers: [
      new ProcessDriver(new AgentClient(join(home, 'no-agent.sock'))),
      ...(withSwarm ? [new SwarmDriver({ docker })] : []),
    ],
    logger: pino({ level: 'silent' }),
    dataDir: 'memory://',
    reconcile: false,
    buildWorker: 'none',
  });
}

describe.skipIf(missing !== undefined)('nodes API', () => {
  let home: string;
  let plain: ControlPlane | undefined;
  let swarm: ControlPlane | undefined;
  let leave: (() => Promise<void>) | undefined;
  let auth: Record<string, string>;
  let plainAuth: Record<string, string>;

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'mp-nodes-'));
    leave = await ensureSwarm(`nodes-${process.pid}`);
    swarm = await controlPlane(join(home, 'a'), true);
    plain = await controlPlane(join(home, 'b'), false);
    auth = { authorization: `Bearer ${swarm.createdAdminToken}` };
    plainAuth = { authorization: `Bearer ${plain.createdAdminToken}` };
  }, 120_000);

  afterAll(async () => {
    await swarm?.close();
    await plain?.close();
    await leave?.();
    await rm(home, { recursive: true, force: true });
  });

  it('answers 400 when the platform has no swarm runtime', async () => {
    const r = await plain?.app.inject({ method: 'GET', url: '/api/v1/nodes', headers: plainAuth });
    expect(r?.statusCode).toBe(400);
    expect(r?.json().error).toMatchObject({ code: 'MINIPAAS_ERR_NOT_AVAILABLE' });
    expect(r?.json().error.message).toMatch(/swarm\.host/);
  });

  it('lists the nodes with role, availability, state and tasks', async () => {
    const r = await swarm?.app.inject({ method: 'GET', url: '/api/v1/nodes', headers: auth });
    expect(r?.statusCode, r?.body).toBe(200);
    const nodes = r?.json().nodes as {
      id: string;
      role: string;
      availability: string;
      state: string;
      tasks: number;
    }[];
    const self = nodes.find((n) => n.role === 'manager');
    expect(self).toMatchObject({ availability: 'active', state: 'ready' });
    expect(typeof self?.tasks).toBe('number');
    // Activating an active node changes nothing and answers the node.
    const a = await swarm?.app.inject({
      method: 'POST',
      url: `/api/v1/nodes/${self?.id}/activate`,
      headers: auth,
    });
    expect(a?.statusCode, a?.body).toBe(200);
    expect(a?.json().node).toMatchObject({ id: self?.id, availability: 'active' });
  });

  it('needs a token', async () => {
    const r = await swarm?.app.inject({ method: 'GET', url: '/api/v1/nodes' });
    expect(r?.statusCode).toBe(401);
    const d = await swarm?.app.inject({ method: 'POST', url: '/api/v1/nodes/x/drain' });
    expect(d?.statusCode).toBe(401);
  });

  it('refuses unknown and malformed node names and changes nothing', async () => {
    const before = (await docker.listNodes()) as { ID: string; Spec: { Availability: string } }[];
    for (const [url, status, code] of [
      ['/api/v1/nodes/no-such-node/drain', 404, 'MINIPAAS_ERR_NOT_FOUND'],
      ['/api/v1/nodes/__proto__/drain', 400, 'MINIPAAS_ERR_VALIDATION'],
      ['/api/v1/nodes/constructor/activate', 404, 'MINIPAAS_ERR_NOT_FOUND'],
      ['/api/v1/nodes/%2e%2e%2fx/drain', 400, 'MINIPAAS_ERR_VALIDATION'],
      ['/api/v1/nodes/a%20b/drain', 400, 'MINIPAAS_ERR_VALIDATION'],
      [`/api/v1/nodes/${'x'.repeat(300)}/drain`, 414, 'MINIPAAS_ERR_URI_TOO_LONG'],
    ] as const) {
      const r = await swarm?.app.inject({ method: 'POST', url, headers: auth });
      expect(r?.statusCode, `${url}: ${r?.body}`).toBe(status);
      expect(r?.json().error.code).toBe(code);
    }
    const after = (await docker.listNodes()) as { ID: string; Spec: { Availability: string } }[];
    expect(after.map((n) => [n.ID, n.Spec.Availability])).toEqual(
      before.map((n) => [n.ID, n.Spec.Availability]),
    );
  });
});
