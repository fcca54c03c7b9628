import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Finds the PostgreSQL server binaries directory (Debian layout), or null. */
export function findPostgresBin(): string | null {
  if (process.env.MINIPAAS_PG_BIN) return process.env.MINIPAAS_PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return null;
}

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
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts a throwaway PostgreSQL cluster in a temp dir on a free port (trust auth, loopback only).
 * When running as root the cluster runs as the `postgres` OS user.
 */
export async function startTestPostgres(): Promise<TestPostgres | null> {
  const bin = findPostgresBin();
  if (!bin) return null;
  const dir = await mkdtemp(join(tmpdir(), 'minipaas-pg-'));
  const asRoot = process.getuid?.() === 0;
  const wrap = (cmd: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: g } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(g.trim()));
  }
  const data = join(dir, 'data');
  const [c1, a1] = wrap('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  await run(c1, a1);
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c synchronous_commit=off -c full_page_writes=off`;
  const [c2, a2] = wrap('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', 'start']);
  await new Promise<void>((resolve, reject) => {
    const p = spawn(c2, a2, { stdio: 'ignore' });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl start exited ${code}`))));
  });
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      const [c3, a3] = wrap('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      await run(c3, a3).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
