/** A control plane that restarts mid-deploy must not leave apps stuck in "deploying". */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DeployService } from '../src/deploy/deploy-service.ts';
import { RuntimeRegistry } from '../src/runtime/runtime-registry.ts';
import { AppService } from '../src/services/app-service.ts';
import { ProjectService } from '../src/services/project-service.ts';
import { openStore } from '../src/store/store.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('recoverInterrupted', () => {
  it('fails cut-off deployments and resets their apps to running (with a release) or failed', async () => {
    const home = await mkdtemp(join(tmpdir(), 'mp-recover-'));
    dirs.push(home);
    const config = await loadConfig({ MINIPAAS_HOME: home });
    const store = await openStore({ dataDir: 'memory://' });
    const log = pino({ level: 'silent' });
    // the agent is not running: recovery must not need it
    const driver = new ProcessDriver(new AgentClient(join(home, 'run', 'agent.sock')));
    const projects = new ProjectService(store.db);
    const apps = new AppService({
      db: store.db,
      config,
      runtimes: new RuntimeRegistry([driver]),
      projects,
      log,
    });
    const deploys = new DeployService({
      db: store.db,
      config,
      runtimes: new RuntimeRegistry([driver]),
      apps,
      log,
    });
    const withRelease = await apps.create({ name: 'had-release', runtime: 'process' });
    const fresh = await apps.create({ name: 'first-deploy', runtime: 'process' });
    await apps.setStatus(withRelease.id, 'deploying', 3);
    await apps.setStatus(fresh.id, 'deploying');
    for (const [id, app] of [
      ['00000000-0000-4000-8000-000000000001', withRelease],
      ['00000000-0000-4000-8000-000000000002', fresh],
    ] as const) {
      await store.db
        .insertInto('deployments')
        .values({ id, app_id: app.id, status: 'building', source: 'upload', log: '[]' })
        .execute();
    }
    expect(await deploys.recoverInterrupted()).toBe(2);
    expect((await apps.get('had-release')).status).toBe('running');
    expect((await apps.get('first-deploy')).status).toBe('failed');
    const d = await deploys.get('00000000-0000-4000-8000-000000000001');
    expect(d.status).toBe('failed');
    expect(d.error).toMatch(/interrupted/);
    await store.close();
  });
});
