/**
 * End-to-end: the embedded PostgreSQL server under the real `minipaas up -d`: it runs as a non-root
 * user; after kill -9 of its postmaster the supervisor restarts it, minipaasd reconnects (the API
 * answers, a new deploy works), the running app never stops serving through the router and no
 * deployment is lost; `down` stops it. With DATABASE_URL no embedded server is started.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, type CliResult, platformEnv, routerGet, waitFor } from '../helpers/platform.ts';
import { createTestDatabase, testPostgresUrl } from '../helpers/postgres.ts';

const execFileP = promisify(execFile);

function run(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI_BIN, ...args], { env, timeout: 120_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** PostgreSQL processes whose command line names this home (the postmaster), with their owners. */
async function postmasters(home: string): Promise<Array<{ pid: number; user: string }>> {
  const { stdout } = await execFileP('ps', ['-eo', 'pid=,user:32=,args=']);
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => (f[2] ?? '').endsWith('/postgres') && f.includes(join(home, 'postgres', 'data')))
    .map((f) => ({ pid: Number(f[0]), user: f[1] ?? '' }));
}

const APP = ['node', '-e', "require('http').createServer((q,s)=>s.end('pg-ok')).listen(process.env.PORT)"];

describe.skipIf(process.env.MINIPAAS_TEST_E2E_DATABASE === 'external')(
  'the embedded PostgreSQL server under minipaas up -d',
  () => {
    let home = '';
    let env: NodeJS.ProcessEnv = {};
    let routerPort = 0;

    beforeAll(async () => {
      ({ home, env, routerPort } = await platformEnv('mp-pg-'));
      const up = await run(['up', '-d', '--timeout', '90'], env);
      expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    });

    afterAll(async () => {
      await run(['down'], env);
      await rm(home, { recursive: true, force: true });
    });

    it('runs as a non-root user, survives kill -9 of the postmaster without losing a request or a deployment, and stops with down', async () => {
      const [pm] = await postmasters(home);
      expect(pm, 'a postgres process of this home').toBeDefined();
      expect(pm?.user).not.toBe('root');
      const log = () => readFile(join(home, 'logs', 'minipaas.log'), 'utf8');

      const deploy = await run(['deploy', '--app', 'pgapp', '--', ...APP], env);
      expect(deploy.code, `${deploy.stdout}\n${deploy.stderr}`).toBe(0);
      const get = () => routerGet(routerPort, '/', `pgapp.localhost:${routerPort}`);
      expect((await get()).body).toBe('pg-ok');
      const info = async () => {
        const r = await run(['apps', 'info', 'pgapp', '--json'], env);
        expect(r.code, r.stderr).toBe(0);
        const { app, deployments } = JSON.parse(r.stdout) as {
          app: { id: string; currentRelease: number | null };
          deployments: Array<{ id: string; status: string }>;
        };
        return { id: app.id, release: app.currentRelease, deployments };
      };
      const before = await info();
      expect(before.deployments.map((d) => d.status)).toEqual(['running']);

      // The app is asked through the router all along; every answer must be the app's.
      let polling = true;
      const failures: string[] = [];
      let answers = 0;
      const poller = (async () => {
        while (polling) {
          try {
            const r = await get();
            if (r.status === 200 && r.body === 'pg-ok') answers++;
            else failures.push(`${r.status} ${r.body.slice(0, 80)}`);
          } catch (err) {
            failures.push((err as Error).message);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })();

      process.kill(pm?.pid as number, 'SIGKILL');
      const next = await waitFor(
        'a new postmaster',
        async () => (await postmasters(home)).find((p) => p.pid !== pm?.pid),
        30_000,
        200,
      );
      expect(next.user).not.toBe('root');
      expect(await log()).toMatch(/postgres exited unexpectedly \(signal SIGKILL\); restarting/);

      // minipaasd reconnects: the API answers and a new deploy goes through.
      await waitFor(
        'the API on the restarted server',
        async () => (await run(['apps', '--json'], env)).code === 0,
      );
      const again = await run(['deploy', '--app', 'pgapp2', '--', ...APP], env);
      expect(again.code, `${again.stdout}\n${again.stderr}\n${await log()}`).toBe(0);
      const { apps } = JSON.parse((await run(['apps', '--json'], env)).stdout) as {
        apps: Array<{ name: string }>;
      };
      expect(apps.map((a) => a.name).sort()).toEqual(['pgapp', 'pgapp2']);
      expect(await info()).toEqual(before); // same app, release and deployments

      polling = false;
      await poller;
      expect(failures).toEqual([]);
      expect(answers).toBeGreaterThan(0);

      const down = await run(['down'], env);
      expect(down.code, `${down.stdout}\n${down.stderr}`).toBe(0);
      await waitFor('PostgreSQL to stop', async () => (await postmasters(home)).length === 0, 20_000);
      expect(existsSync(join(home, 'postgres', 'data', 'postmaster.pid'))).toBe(false);
      expect(await log()).toContain('stopping PostgreSQL');
    });
  },
);

describe.runIf(testPostgresUrl() || process.env.CI)('minipaas up -d with DATABASE_URL', () => {
  it('starts no embedded server and keeps its state in that database', async () => {
    const db = await createTestDatabase('e2e');
    const { home, env } = await platformEnv('mp-pgx-', { DATABASE_URL: db.url });
    try {
      const up = await run(['up', '-d', '--timeout', '90'], env);
      expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
      expect(existsSync(join(home, 'postgres'))).toBe(false);
      expect(await postmasters(home)).toEqual([]);
      const deploy = await run(['deploy', '--app', 'extapp', '--', ...APP], env);
      expect(deploy.code, `${deploy.stdout}\n${deploy.stderr}`).toBe(0);
      const pg = await import('pg');
      const client = new pg.default.Client({ connectionString: db.url });
      await client.connect();
      const { rows } = await client.query('SELECT name FROM apps');
      await client.end();
      expect(rows).toEqual([{ name: 'extapp' }]);
    } finally {
      await run(['down'], env);
      await rm(home, { recursive: true, force: true });
      await db.drop();
    }
  });
});
