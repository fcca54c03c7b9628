/** Per-app uids: allocated from the configured range, unique, reused after deletion, created as OS users. */
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { loadConfig, MinipaasError } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { RuntimeRegistry } from '../src/runtime/runtime-registry.ts';
import { AppIdentityService, appUserName } from '../src/services/app-identity.ts';
import { AppService } from '../src/services/app-service.ts';
import { ProjectService } from '../src/services/project-service.ts';
import { openStore, type Store } from '../src/store/store.ts';

const execFileP = promisify(execFile);
const dirs: string[] = [];
const stores: Store[] = [];
const agents: AgentHandle[] = [];
afterAll(async () => {
  for (const a of agents) await a.close();
  for (const s of stores) await s.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function setup(uidMin: number, uidMax: number, osUsers: boolean) {
  const home = await mkdtemp(join(tmpdir(), 'mp-identity-'));
  dirs.push(home);
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_APP_UID_MIN: String(uidMin),
    MINIPAAS_APP_UID_MAX: String(uidMax),
  });
  const store = await openStore({ dataDir: 'memory://' });
  stores.push(store);
  const log = pino({ level: 'silent' });
  // A real agent (no router): deleting an app asks it to stop the app's instances.
  agents.push(await startAgent({ config, logger: log, router: false, restore: false }));
  const driver = new ProcessDriver(new AgentClient(join(home, 'run', 'agent.sock')));
  const identity = new AppIdentityService({ db: store.db, config, log, osUsers });
  const apps = new AppService({
    db: store.db,
    config,
    runtimes: new RuntimeRegistry([driver]),
    projects: new ProjectService(store.db),
    log,
    identity,
  });
  return { store, identity, apps, config, log };
}

async function getent(db: 'passwd' | 'group', key: string): Promise<string[] | null> {
  try {
    return (await execFileP('getent', [db, key])).stdout.trim().split(':');
  } catch {
    return null;
  }
}

describe('per-app uid allocation', () => {
  it('gives unique ids from the range, reuses freed ones, and refuses clearly when the range is exhausted', async () => {
    const { store, identity, apps } = await setup(70_000, 70_002, false);
    const made = [];
    for (const name of ['one', 'two', 'three']) made.push(await apps.create({ name, runtime: 'process' }));
    const ids = await Promise.all(made.map((a) => identity.allocate(a)));
    expect(ids.map((u) => u.uid)).toEqual([70_000, 70_001, 70_002]);
    expect(ids.map((u) => u.gid)).toEqual([70_000, 70_001, 70_002]);
    expect(ids[0]?.name).toBe('mp70000');
    // allocating again is idempotent
    expect((await identity.allocate(made[1] as { id: string; name: string })).uid).toBe(70_001);

    const err = await apps.create({ name: 'four', runtime: 'process' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MinipaasError);
    expect((err as MinipaasError).code).toBe('MINIPAAS_ERR_LIMIT_EXCEEDED');
    expect((err as MinipaasError).message).toMatch(
      /no free uid.*apps\.uidMin\.\.apps\.uidMax \(70000\.\.70002\)/,
    );
    // the refused create left nothing behind
    await expect(apps.get('four')).rejects.toThrow(/not found/);

    await apps.delete('two');
    const five = await apps.create({ name: 'five', runtime: 'process' });
    expect((await identity.allocate(five)).uid).toBe(70_001);
    const rows = await store.db.selectFrom('app_identities').select('uid').execute();
    expect(new Set(rows.map((r) => Number(r.uid))).size).toBe(rows.length);
  });

  it('allocates lazily for apps created before identities existed, and in parallel without duplicates', async () => {
    const { store, identity } = await setup(71_000, 71_099, false);
    const old = [];
    for (let n = 0; n < 20; n++) {
      const row = await store.db
        .insertInto('apps')
        .values({
          id: randomUUID(),
          project_id: 'default',
          name: `old-${n}`,
          processes: '{}',
          env: '{}',
        } as never)
        .returningAll()
        .executeTakeFirstOrThrow();
      old.push(row);
    }
    const ids = await Promise.all(old.map((a) => identity.allocate(a)));
    expect(new Set(ids.map((u) => u.uid)).size).toBe(20);
    for (const u of ids) {
      expect(u.uid).toBeGreaterThanOrEqual(71_000);
      expect(u.uid).toBeLessThanOrEqual(71_099);
    }
  });
});

describe.runIf(process.getuid?.() === 0)('OS users of apps (platform is root)', () => {
  it('creates the user and group with no home and no login shell, skips ids taken on the host, and removes them with the app', async () => {
    const base = 3_000_000 + Math.floor(Math.random() * 1000) * 10;
    // an id of the range already used by someone else on the host is skipped
    await execFileP('groupadd', ['--gid', String(base), `mptest${base}`]);
    try {
      const { identity, apps, store, config, log } = await setup(base, base + 5, true);
      const app = await apps.create({ name: 'osuser', runtime: 'process' });
      const user = await identity.userFor(app);
      expect(user?.uid).toBe(base + 1);
      const pw = await getent('passwd', String(base + 1));
      expect(pw?.[0]).toBe(appUserName(base + 1));
      expect(pw?.[3]).toBe(String(base + 1)); // primary group
      expect(pw?.[5]).toBe('/nonexistent');
      expect(pw?.[6]).toMatch(/nologin|false/);
      expect((await getent('group', String(base + 1)))?.[0]).toBe(appUserName(base + 1));
      // idempotent when the user already exists with the same ids (another process, or a restart, made it)
      const again = new AppIdentityService({ db: store.db, config, log, osUsers: true });
      expect(await again.userFor(app)).toEqual(user);

      // an id some process still runs as (say, an escaped child of a deleted app) is not handed out
      const squatter = spawn('sleep', ['60'], { uid: base + 2, gid: base + 2, stdio: 'ignore' });
      try {
        await new Promise((r) => squatter.once('spawn', r));
        const next = await apps.create({ name: 'next', runtime: 'process' });
        expect((await identity.allocate(next)).uid).toBe(base + 3);
      } finally {
        squatter.kill('SIGKILL');
      }

      await apps.delete('osuser');
      expect(await getent('passwd', String(base + 1))).toBeNull();
      expect(await getent('group', String(base + 1))).toBeNull();
      await apps.delete('next');
    } finally {
      await execFileP('groupdel', [`mptest${base}`]);
    }
  });
});
