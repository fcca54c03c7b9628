/**
 * A build worker that starts after a crash (its predecessor killed mid-deploy) must not leave anything
 * stuck: cut-off deployments are retried once or failed with the reason, cancelled ones end cancelled,
 * apps go back to running (with a release) or failed. Runs on PGlite (the in-process worker's store).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { buildQueue, installBuildQueue } from '../src/deploy/build-queue.ts';
import { DeploymentFeed } from '../src/deploy/deployment-feed.ts';
import { DeploymentStore } from '../src/deploy/deployment-store.ts';
import { kyselyExecutor } from '../src/deploy/kysely-executor.ts';
import { createBuildWorker } from '../src/deploy/pipeline.ts';
import { RuntimeRegistry } from '../src/runtime/runtime-registry.ts';
import { AppService } from '../src/services/app-service.ts';
import { ProjectService } from '../src/services/project-service.ts';
import { openStore } from '../src/store/store.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('build worker recovery', () => {
  it('retries cut-off deployments once, then fails them with the reason; resets their apps', async () => {
    const home = await mkdtemp(join(tmpdir(), 'mp-recover-'));
    dirs.push(home);
    const config = await loadConfig({ MINIPAAS_HOME: home, MINIPAAS_BUILD_RETRIES: '1' });
    const store = await openStore({ dataDir: 'memory://' });
    const log = pino({ level: 'silent' });
    // the agent is not running: recovery must not need it
    const runtimes = new RuntimeRegistry([
      new ProcessDriver(new AgentClient(join(home, 'run', 'agent.sock'))),
    ]);
    const apps = new AppService({
      db: store.db,
      config,
      runtimes,
      projects: new ProjectService(store.db),
      log,
    });
    const exec = kyselyExecutor(store.db);
    await installBuildQueue(exec);
    const deployments = new DeploymentStore(store.db, new DeploymentFeed());
    const worker = createBuildWorker({
      db: store.db,
      queueDb: exec,
      config,
      apps,
      runtimes,
      deployments,
      log,
    });
    const withRelease = await apps.create({ name: 'had-release', runtime: 'process' });
    const fresh = await apps.create({ name: 'first-deploy', runtime: 'process' });
    await apps.setStatus(withRelease.id, 'deploying', 3);
    await apps.setStatus(fresh.id, 'deploying');
    const queue = buildQueue(exec);
    const rows = [
      ['00000000-0000-4000-8000-000000000001', withRelease, 'building', 1, false],
      ['00000000-0000-4000-8000-000000000002', fresh, 'deploying', 2, false],
      ['00000000-0000-4000-8000-000000000003', fresh, 'building', 1, true],
    ] as const;
    for (const [id, app, status, attempts, cancel] of rows) {
      const job = await queue.enqueue({ deploymentId: id });
      await store.db
        .insertInto('deployments')
        .values({
          id,
          app_id: app.id,
          status,
          source: 'upload',
          log: '[]',
          attempts,
          cancel_requested: cancel,
          job_id: job.id,
        })
        .execute();
    }
    // staged sources: a failed deployment's goes, an upload arriving right now (no row yet) stays
    await mkdir(join(home, 'builds', '00000000-0000-4000-8000-000000000002'), { recursive: true });
    await writeFile(join(home, 'builds', '00000000-0000-4000-8000-0000000000ff.upload'), 'partial');
    // the dead worker's leases
    expect(await queue.dequeue(3, { visibilityTimeoutMs: 600_000 })).toHaveLength(3);
    expect(await worker.recover()).toBe(3);
    expect((await apps.get('had-release')).status).toBe('running');
    expect((await apps.get('first-deploy')).status).toBe('failed');
    const retried = await deployments.view('00000000-0000-4000-8000-000000000001');
    expect(retried?.status).toBe('queued');
    expect(retried?.position).toBe(1);
    expect(retried?.log.join('\n')).toMatch(/interrupted.*retrying/);
    const failed = await deployments.view('00000000-0000-4000-8000-000000000002');
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toMatch(/interrupted.*gave up after 2 attempts/);
    expect((await deployments.view('00000000-0000-4000-8000-000000000003'))?.status).toBe('cancelled');
    expect(existsSync(join(home, 'builds', '00000000-0000-4000-8000-000000000002'))).toBe(false);
    expect(existsSync(join(home, 'builds', '00000000-0000-4000-8000-0000000000ff.upload'))).toBe(true);
    // the retried one's job is back in the queue (after its backoff), the finished ones' jobs are done
    const m = await queue.metrics();
    expect(m.inFlight).toBe(0);
    expect(m.delayed + m.ready).toBe(1);
    await store.close();
  });
});
