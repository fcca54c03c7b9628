/**
 * The reconciler's idle cost: with nothing changed, a pass pushes no app to the runtime; a changed app
 * row, an agent that lost an app, or a full resync push again. Real agent, real store.
 */
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type AppSpec, loadConfig } from '@minipaas/core';
import { type AgentApi, AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reconciler } from '../src/reconciler.ts';
import { RuntimeRegistry } from '../src/runtime/runtime-registry.ts';
import { AppService } from '../src/services/app-service.ts';
import { ProjectService } from '../src/services/project-service.ts';
import { openStore, type Store } from '../src/store/store.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', 'agent', 'test', 'fixtures');
const APPS = 4;

/** The real agent client, counting the specs pushed through it. */
class CountingClient extends AgentClient implements AgentApi {
  pushed: string[] = [];
  override putApp(spec: AppSpec) {
    this.pushed.push(spec.name);
    return super.putApp(spec);
  }
}

describe('reconciler: pushes only what changed', () => {
  let home: string;
  let agent: AgentHandle;
  let client: CountingClient;
  let store: Store;
  let apps: AppService;
  let reconciler: Reconciler;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'mp-reconcile-'));
    const portMin = 21000 + Math.floor(Math.random() * 50) * 100;
    const config = await loadConfig({
      MINIPAAS_HOME: home,
      MINIPAAS_APP_PORT_MIN: String(portMin),
      MINIPAAS_APP_PORT_MAX: String(portMin + 99),
      MINIPAAS_APP_USER: 'root',
      MINIPAAS_STOP_GRACE_MS: '2000',
    });
    const log = pino({ level: 'silent' });
    agent = await startAgent({ config, logger: log, router: false, restore: false });
    client = new CountingClient({ home });
    store = await openStore({ dataDir: 'memory://' });
    const driver = new ProcessDriver(client);
    apps = new AppService({
      db: store.db,
      config,
      runtimes: new RuntimeRegistry([driver]),
      projects: new ProjectService(store.db),
      log,
    });
    reconciler = new Reconciler({
      apps,
      runtimes: new RuntimeRegistry([driver]),
      log,
      fullResyncMs: 3_600_000,
    });
    for (let n = 0; n < APPS; n++) {
      const app = await apps.create({ name: `rec-${n}`, runtime: 'process' });
      const dir = join(home, 'releases', app.name, 'v1');
      cpSync(FIXTURES, dir, { recursive: true });
      await store.db
        .insertInto('releases')
        .values({
          id: randomUUID(),
          app_id: app.id,
          version: 1,
          dir,
          stack: 'node',
          commands: JSON.stringify({ web: `${process.execPath} web.js` }),
          env: JSON.stringify({}),
          source: 'test',
          artifact: JSON.stringify({ kind: 'directory', path: dir }),
        })
        .execute();
      await apps.setStatus(app.id, 'running', 1);
    }
  }, 60_000);

  afterAll(async () => {
    await reconciler?.stop();
    await client?.close();
    await agent?.close();
    await store?.close();
    rmSync(home, { recursive: true, force: true });
  });

  /** Rolling apps are left alone by a pass: wait until none rolls. */
  const waitReady = async () => {
    for (;;) {
      const all = await client.listApps();
      if (all.length === APPS && all.every((a) => a.rollout.status === 'ready')) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it('pushes every app once, then nothing while idle', async () => {
    expect(await reconciler.pass()).toBe(APPS);
    expect(client.pushed).toHaveLength(APPS);
    await waitReady();
    client.pushed = [];
    for (let i = 0; i < 5; i++) expect(await reconciler.pass()).toBe(0);
    expect(client.pushed).toEqual([]);
  });

  it('pushes an app whose row changed, or that the agent lost; a full pass pushes all', async () => {
    const changed = await apps.get('rec-1');
    await store.db
      .updateTable('apps')
      .set({ env: JSON.stringify({ GREETING: 'changed' }), updated_at: new Date() })
      .where('id', '=', changed.id)
      .execute();
    client.pushed = [];
    expect(await reconciler.pass()).toBe(1);
    expect(client.pushed).toEqual(['rec-1']);
    expect((await client.getApp('rec-1'))?.rollout.release).toBe('v1');

    await client.deleteApp('rec-2'); // the agent no longer holds it (e.g. its state was lost)
    client.pushed = [];
    expect(await reconciler.pass()).toBe(1);
    expect(client.pushed).toEqual(['rec-2']);
    expect(await client.getApp('rec-2')).not.toBeNull();

    await waitReady();
    client.pushed = [];
    expect(await reconciler.pass(true)).toBe(APPS);
    expect(client.pushed.sort()).toEqual(['rec-0', 'rec-1', 'rec-2', 'rec-3']);
  });
});
