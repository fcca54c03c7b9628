/**
 * The build worker inside minipaasd on PGlite (what `dataDir` tests and PGlite homes use): a build past
 * `builds.timeoutMs` is killed and failed, a failing app build is failed at once, never retried, and a
 * platform failure (no agent is running here) is retried `builds.retries` times, then failed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGates, type Gates } from '../../../test/helpers/gated-app.ts';
import { waitFor } from '../../../test/helpers/platform.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let cp: ControlPlane;
let gates: Gates;
let auth: { authorization: string };

async function deploy(app: string, body: Buffer): Promise<DeploymentView> {
  const r = await cp.app.inject({
    method: 'POST',
    url: `/api/v1/apps/${app}/deploy`,
    headers: { ...auth, 'content-type': 'application/gzip' },
    payload: body,
  });
  expect(r.statusCode, r.body).toBe(202);
  return r.json<DeploymentView>();
}

const finished = (id: string) =>
  waitFor(
    'the deployment to finish',
    async () => {
      const d = (
        await cp.app.inject({ method: 'GET', url: `/api/v1/deployments/${id}`, headers: auth })
      ).json<DeploymentView>();
      return ['running', 'failed', 'cancelled'].includes(d.status) ? d : null;
    },
    60_000,
  );

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-worker-'));
  gates = await createGates();
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_BUILD_TIMEOUT_MS: '8000',
    MINIPAAS_BUILD_RETRIES: '3',
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  cp = await createControlPlane({
    config: { ...config, builds: { ...config.builds, retryDelayMs: 50 } },
    drivers: [new ProcessDriver(new AgentClient(join(home, 'run', 'agent.sock')))],
    logger: pino({ level: 'silent' }),
    dataDir: 'memory://',
    reconcile: false,
  });
  auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  for (const name of ['slow', 'broken', 'no-agent'])
    expect(
      (await cp.app.inject({ method: 'POST', url: '/api/v1/apps', headers: auth, payload: { name } }))
        .statusCode,
    ).toBe(201);
}, 60_000);

afterAll(async () => {
  await gates?.open('slow');
  await gates?.open('broken');
  await cp?.close();
  await gates?.close();
  await rm(home, { recursive: true, force: true });
});

describe('build worker in-process (PGlite)', () => {
  it('kills and fails a build that runs past builds.timeoutMs (not retried)', async () => {
    const d = await deploy('slow', gates.app('slow'));
    const done = await finished(d.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/timed out after 8s/);
    expect(done.attempts).toBe(1);
    const pid = gates.pid('slow');
    if (pid !== null)
      await waitFor('the build process to be gone', async () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      });
  }, 90_000);

  it('fails a failing app build at once and never retries it', async () => {
    await gates.open('broken');
    const d = await deploy('broken', gates.app('broken', { failBuild: true }));
    const done = await finished(d.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/npm install failed \(exit code/);
    expect(done.attempts).toBe(1);
    expect((await cp.ctx.apps.get('broken')).status).toBe('failed');
  }, 90_000);

  it('retries a platform failure (the agent is unreachable) with backoff, then fails with the reason', async () => {
    const r = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps/no-agent/deploy',
      headers: auth,
      payload: { command: 'node -e "setInterval(() => {}, 1000)"' },
    });
    expect(r.statusCode, r.body).toBe(202);
    const done = await finished(r.json<DeploymentView>().id);
    expect(done.status).toBe('failed');
    expect(done.attempts).toBe(4); // the first run and builds.retries=3 retries
    expect(done.error).toMatch(/platform failure: .*gave up after 4 attempts/);
    expect(done.log.filter((l) => /retrying in/.test(l))).toHaveLength(3);
  }, 90_000);
});
