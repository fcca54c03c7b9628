import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** URL of the run's shared test Postgres server (set by test/global-setup.ts), or undefined. */
export function testPostgresUrl(): string | undefined {
  return process.env.MINIPAAS_TEST_PG_URL;
}

/**
 * Creates a fresh, uniquely named database on the test server and returns its URL and a drop function.
 * Every database test file calls this once so files never share state.
 */
export async function createTestDatabase(prefix = 't'): Promise<{ url: string; drop(): Promise<void> }> {
  const base = testPostgresUrl();
  if (!base) throw new Error('no test Postgres server (MINIPAAS_TEST_PG_URL unset)');
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      try {
        // Give connections that are closing a moment to go away before forcing, so no client in the
        // test process gets an unexpected "terminating connection" error.
        for (let i = 0; i < 20; i++) {
          const r = await c.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [
            name,
          ]);
          if ((r.rows[0] as { n: number }).n === 0) break;
          await new Promise((res) => setTimeout(res, 100));
        }
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
