/**
 * Vitest global setup: starts one throwaway PostgreSQL server for the whole run when the
 * machine has PostgreSQL server binaries, and exposes its URL as MINIPAAS_TEST_PG_URL.
 * Test files create a fresh database each (see test/helpers/postgres.ts).
 * In CI (`CI=true`) a missing Postgres is an error, never a silent skip.
 */
import { startTestPostgres } from './helpers/postgres-server.ts';

export default async function setup(): Promise<() => Promise<void>> {
  if (process.env.MINIPAAS_TEST_PG_URL) return async () => {};
  const pg = await startTestPostgres();
  if (!pg) {
    if (process.env.CI) throw new Error('CI requires PostgreSQL server binaries (see .ci/run)');
    return async () => {};
  }
  process.env.MINIPAAS_TEST_PG_URL = pg.url;
  return async () => {
    await pg.stop();
  };
}
