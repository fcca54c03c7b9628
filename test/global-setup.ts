/**
 * Vitest global setup: starts one throwaway PostgreSQL server for the whole run from the binaries the
 * platform embeds (`@minipaas/postgres`; MINIPAAS_PG_BIN selects others), and exposes its URL as
 * MINIPAAS_TEST_PG_URL. Set MINIPAAS_TEST_PG_URL yourself to run the suites on an external server.
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
