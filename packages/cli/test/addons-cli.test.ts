/**
 * The real `minipaas` bin against the real platform on a real Postgres server: add-on lifecycle in
 * both command forms, the --confirm refusal, sql:install, backup/backups, and restore refusing
 * while minipaasd runs. Kept small: the API test (packages/server/test/addons.test.ts) covers the rest.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, type Platform, startPlatform } from '../../../test/helpers/platform.ts';
import { createTestDatabase, testPostgresUrl } from '../../../test/helpers/postgres.ts';

describe.runIf(Boolean(testPostgresUrl() || process.env.CI))('minipaas addons / backup (CLI)', () => {
  let p: Platform;
  let db: { url: string; drop(): Promise<void> };

  beforeAll(async () => {
    db = await createTestDatabase('cliaddons');
    p = await startPlatform({ DATABASE_URL: db.url, MINIPAAS_BACKUP_SCHEDULE: 'off' });
    expect((await p.api('POST', '/api/v1/apps', { name: 'web' })).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await p?.stop();
    await db?.drop();
  });

  it('creates, lists, shows, installs @minipaas/sql, backs up and destroys an add-on', async () => {
    const created = await p.cli(['addons:create', 'postgres', '--app', 'web']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('DATABASE_URL');
    const list = await p.cli(['addons', '--app', 'web', '--json']);
    expect(JSON.parse(list.stdout).addons.map((a: { name: string }) => a.name)).toEqual(['postgres']);
    const info = await p.cli(['addons', 'info', 'postgres', '--app', 'web', '--json']);
    expect(JSON.parse(info.stdout).url).toContain(':********@');

    const refused = await p.cli(['addons:destroy', 'postgres', '--app', 'web']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^error: .*--confirm postgres/),
    ]);

    const sql = await p.cli(['sql:install', '--app', 'web']);
    expect(sql.code, sql.stderr).toBe(0);
    expect(sql.stdout).toContain('@minipaas/sql');

    // without psql on PATH, addons:sql prints the URL and says psql is missing
    const noPsql = await new Promise<{ code: number; stdout: string; stderr: string }>((res) =>
      execFile(
        process.execPath,
        [CLI_BIN, 'addons:sql', '--app', 'web'],
        { env: { ...p.env, PATH: '/nonexistent' } },
        (err, stdout, stderr) => res({ code: err ? 1 : 0, stdout, stderr }),
      ),
    );
    expect(noPsql.code, noPsql.stderr).toBe(0);
    expect(noPsql.stdout).toMatch(/^postgres:\/\/mp_web_postgres_[0-9a-f]{8}:/);
    expect(noPsql.stderr).toMatch(/psql is not installed/);

    const backup = await p.cli(['backup', '--addon', 'postgres', '--app', 'web']);
    expect(backup.code, backup.stderr).toBe(0);
    const backups = JSON.parse((await p.cli(['backups', '--json'])).stdout).backups;
    expect(backups[0].file).toMatch(/^addon-web\.postgres-/);

    const restorePlatform = await p.cli(['restore', 'platform-x-20260101T000000Z.dump']);
    expect(restorePlatform.code).toBe(1);
    expect(restorePlatform.stderr).toMatch(/minipaasd is running/);

    const destroyed = await p.cli(['addons', 'destroy', 'postgres', '--app', 'web', '--confirm', 'postgres']);
    expect(destroyed.code, destroyed.stderr).toBe(0);
    expect(JSON.parse((await p.cli(['addons', '--app', 'web', '--json'])).stdout).addons).toEqual([]);
  });

  it('restores a backup of a destroyed add-on into a new one of the same name (minipaas restore --addon)', async () => {
    const urlOf = async () =>
      JSON.parse((await p.cli(['addons:info', 'postgres', '--app', 'web', '--reveal', '--json'])).stdout)
        .url as string;
    const sql = async (url: string, text: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (await c.query(text)).rows as Array<{ body: string }>;
      } finally {
        await c.end();
      }
    };
    expect((await p.cli(['addons:create', 'postgres', '--app', 'web'])).code).toBe(0);
    const oldUrl = await urlOf();
    await sql(oldUrl, "CREATE TABLE kept (body text); INSERT INTO kept VALUES ('a'), ('b')");
    // backup names have a one-second stamp: drop the earlier test's backup so this one cannot collide
    for (const b of JSON.parse((await p.cli(['backups', '--json'])).stdout).backups as Array<{
      path: string;
    }>)
      await rm(b.path);
    const backup = await p.cli(['backup', '--addon', 'postgres', '--app', 'web', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const { path } = JSON.parse(backup.stdout) as { path: string };
    const gone = await p.cli(['addons:destroy', 'postgres', '--app', 'web', '--confirm', 'postgres']);
    expect(gone.code, gone.stderr).toBe(0);

    expect((await p.cli(['addons:create', 'postgres', '--app', 'web'])).code).toBe(0);
    const newUrl = await urlOf();
    expect(new URL(newUrl).username).not.toBe(new URL(oldUrl).username);
    const restored = await p.cli(['restore', path, '--addon', 'postgres', '--app', 'web']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain('Restored postgres of web');
    expect((await sql(newUrl, 'SELECT body FROM kept ORDER BY body')).map((r) => r.body)).toEqual(['a', 'b']);
  });
});
