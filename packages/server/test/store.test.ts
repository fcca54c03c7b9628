import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testPostgresUrl } from '../../../test/helpers/postgres.ts';
import { startHomePostgres } from '../../../test/helpers/postgres-server.ts';
import { ProjectService } from '../src/services/project-service.ts';
import { TokenService } from '../src/services/token-service.ts';
import { MIGRATIONS_DIR, openStore, type Store } from '../src/store/store.ts';

const run = promisify(execFile);

type Backend = { name: string; open(): Promise<{ store: Store; cleanup(): Promise<void> }> };

const backends: Backend[] = [
  {
    name: 'the embedded server',
    async open() {
      const home = await mkdtemp(join(tmpdir(), 'mp-store-'));
      const pg = await startHomePostgres(home);
      const store = await openStore({ databaseUrl: pg.server.superuserUrl() });
      return {
        store,
        async cleanup() {
          await pg.stop();
          await rm(home, { recursive: true, force: true });
        },
      };
    },
  },
];
// The shared test server stands for an external DATABASE_URL (required in CI).
if (testPostgresUrl() || process.env.CI) {
  backends.push({
    name: 'an external server',
    async open() {
      const db = await createTestDatabase('store');
      const store = await openStore({ databaseUrl: db.url });
      return { store, cleanup: () => db.drop() };
    },
  });
}

describe.each(backends)('store on $name', (backend) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ store, cleanup } = await backend.open());
  });
  afterAll(async () => {
    await store.close();
    await cleanup();
  });

  it('applies migrations once and has the default project', async () => {
    const versions = await store.db.selectFrom('schema_migrations').select('version').execute();
    expect(versions.map((v) => v.version)).toContain('20261122000001');
    const projects = new ProjectService(store.db);
    expect((await projects.get('default')).slug).toBe('default');
  });

  it('creates, finds, refuses duplicates and deletes projects', async () => {
    const projects = new ProjectService(store.db);
    const p = await projects.create({ name: 'My App', slug: 'my-app' });
    expect(p.slug).toBe('my-app');
    expect((await projects.get(p.id)).name).toBe('My App');
    await expect(projects.create({ name: 'Other', slug: 'my-app' })).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_PROJECT_EXISTS',
    });
    await projects.delete('my-app');
    await expect(projects.get('my-app')).rejects.toMatchObject({ code: 'MINIPAAS_ERR_PROJECT_NOT_FOUND' });
    await expect(projects.delete('default')).rejects.toMatchObject({ code: 'MINIPAAS_ERR_CONFLICT' });
  });

  it('creates the admin token once, stores only its hash, and verifies it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mp-tok-'));
    const tokens = new TokenService(store.db);
    const file = join(dir, 'admin-token');
    const token = await tokens.ensureAdminToken(file);
    expect(token).toMatch(/^mp_/);
    expect(await tokens.ensureAdminToken(file)).toBeNull();
    const rows = await store.db.selectFrom('api_tokens').select('token_hash').execute();
    expect(rows.map((r) => r.token_hash)).not.toContain(token);
    expect(await tokens.verify(token as string)).toMatchObject({ role: 'owner' });
    expect(await tokens.verify('mp_wrongwrongwrongwrongwrongwrong')).toBeNull();
    const { stat } = await import('node:fs/promises');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await rm(dir, { recursive: true, force: true });
  });

  it('serialises concurrent writes without losing any', async () => {
    const projects = new ProjectService(store.db);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => projects.create({ name: `P ${i}`, slug: `p-${i}` })),
    );
    expect((await projects.list()).filter((p) => p.slug.startsWith('p-'))).toHaveLength(20);
  });
});

describe.runIf(testPostgresUrl() || process.env.CI)('migrations with the real dbmate', () => {
  it('up, down, up', async () => {
    const db = await createTestDatabase('dbmate');
    const url = new URL(db.url);
    url.searchParams.set('sslmode', 'disable');
    const dbmate = join(process.cwd(), 'node_modules', '.bin', 'dbmate');
    const args = ['--no-dump-schema', '-u', url.toString(), '-d', MIGRATIONS_DIR];
    await run(dbmate, [...args, 'up']);
    await run(dbmate, [...args, 'down']);
    await run(dbmate, [...args, 'up']);
    // Our own migrator agrees with dbmate's bookkeeping: nothing left to apply.
    const store = await openStore({ databaseUrl: db.url });
    const rows = await store.db.selectFrom('projects').select('slug').execute();
    expect(rows.map((r) => r.slug)).toEqual(['default']);
    await store.close();
    await db.drop();
  });
});
