import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundledPackageRoot, type EmbeddedPostgres, embeddedPostgres } from '@minipaas/postgres';

/** Asks the kernel for a free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface TestPostgres {
  /** Superuser URL over TCP on 127.0.0.1 (database `postgres`). */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts a throwaway PostgreSQL server in a temp dir on a free loopback port, from the binaries the
 * platform embeds (`@minipaas/postgres`; MINIPAAS_PG_BIN selects other ones). Durability is off
 * (`--no-sync`, fsync off): test data only. Returns null when this machine has no server binaries.
 * When running as root the server runs as the unprivileged `minipaas-pg` user (created when missing).
 */
export async function startTestPostgres(): Promise<TestPostgres | null> {
  const binDir = process.env.MINIPAAS_PG_BIN || undefined;
  if (!binDir && !bundledPackageRoot()) return null;
  const home = await mkdtemp(join(tmpdir(), 'minipaas-pg-'));
  const port = await freePort();
  const server = embeddedPostgres({
    home,
    config: { port, binDir },
    unsafeNoSync: true,
    // Many test files share it; bench/queue measures on it (PostgreSQL's default buffers, not the platform's 16MB).
    settings: { max_connections: '200', shared_buffers: '128MB' },
  });
  try {
    await server.init();
    await server.start();
  } catch (err) {
    await rm(home, { recursive: true, force: true });
    throw err;
  }
  return {
    url: server.superuserTcpUrl('postgres'),
    async stop() {
      await server.stop();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/**
 * Creates and starts the embedded server of a MINIPAAS_HOME as `minipaas up` does (without fsync, for
 * tests), so `createControlPlane` without DATABASE_URL finds it. `stop()` shuts it down.
 */
export async function startHomePostgres(
  home: string,
): Promise<{ server: EmbeddedPostgres; stop(): Promise<void> }> {
  const server = embeddedPostgres({
    home,
    config: { binDir: process.env.MINIPAAS_PG_BIN || undefined },
    unsafeNoSync: true,
  });
  await server.init();
  await server.start();
  return { server, stop: async () => void (await server.stop()) };
}
