import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import {
  bundledPackageRoot,
  type EmbeddedPostgres,
  embeddedPostgres,
  hydrateSymlinks,
} from '../src/index.ts';

const hasBinaries = Boolean(process.env.MINIPAAS_PG_BIN || bundledPackageRoot());

async function query(url: string, text: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

describe.runIf(hasBinaries || process.env.CI)('embedded PostgreSQL server', () => {
  let home: string;
  let server: EmbeddedPostgres;
  let port: number;
  const lines: string[] = [];

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'mp-pg-test-'));
    port = await freePort();
    server = embeddedPostgres({
      home,
      config: { port, binDir: process.env.MINIPAAS_PG_BIN || undefined },
      log: (l) => lines.push(l),
    });
    expect(await server.init()).toBe(true);
    await server.start();
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it('creates the cluster once, with a private password file and a socket directory others can reach', async () => {
    expect(lines.some((l) => l.startsWith('creating the PostgreSQL cluster'))).toBe(true);
    expect(await server.init()).toBe(false);
    expect(statSync(server.passwordFile).mode & 0o777).toBe(0o600);
    expect(statSync(server.dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(server.socketDir).mode & 0o777).toBe(0o755);
    if (process.getuid?.() === 0) {
      expect(statSync(server.passwordFile).uid).toBe(0);
      expect(statSync(server.dataDir).uid).not.toBe(0);
      expect(statSync(server.socketDir).uid).toBe(statSync(server.dataDir).uid);
    }
  });

  it('runs the server as a non-root user, with a small footprint', async () => {
    const pid = server.postmasterPid();
    expect(pid).toBeGreaterThan(0);
    const uid = Number(
      /^Uid:\s+(\d+)/m.exec(execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }))?.[1],
    );
    expect(uid).not.toBe(0);
    const [row] = await query(
      server.superuserUrl(),
      "SELECT current_database() AS db, current_setting('shared_buffers') AS sb, current_setting('max_connections') AS mc, current_setting('server_version_num')::int AS v",
    );
    expect(row).toMatchObject({ db: 'minipaas', sb: '16MB', mc: '50' });
    expect(Number(row?.v)).toBeGreaterThanOrEqual(150000);
  });

  it('asks every connection for the password (socket and TCP)', async () => {
    const socketNoPw = `postgresql://postgres@/minipaas?host=${encodeURIComponent(server.socketDir)}&port=${server.port}`;
    await expect(query(socketNoPw, 'SELECT 1')).rejects.toThrow(/password/);
    const tcpWrong = `postgresql://postgres:wrong@127.0.0.1:${port}/minipaas`;
    await expect(query(tcpWrong, 'SELECT 1')).rejects.toThrow(/password authentication failed/);
    expect(await query(server.superuserTcpUrl(), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('keeps the data across a stop and a start, and a kill -9 of the postmaster', async () => {
    await query(server.superuserUrl(), 'CREATE TABLE kept (v text); INSERT INTO kept VALUES ($$a$$)');
    expect(await server.stop()).toBe(true);
    expect(server.running()).toBe(false);
    expect(await server.stop()).toBe(false);
    await server.start();
    const pid = server.postmasterPid();
    expect(pid).toBeGreaterThan(0);
    process.kill(pid as number, 'SIGKILL');
    while (server.postmasterPid() === pid) await new Promise((r) => setTimeout(r, 50));
    await server.start({ timeoutMs: 60_000 });
    expect(server.postmasterPid()).not.toBe(pid);
    expect(await query(server.superuserUrl(), 'SELECT v FROM kept')).toEqual([{ v: 'a' }]);
  });

  it('listens on the unix socket only when no port is configured', async () => {
    const socketOnly = embeddedPostgres({ home, config: { port: 0 } });
    const args = (await socketOnly.serverCommand()).args;
    expect(args).toContain('listen_addresses=');
    expect(socketOnly.superuserUrl()).toMatch(/^postgresql:\/\/postgres:[^@]+@\/minipaas\?host=/);
  });
});

describe('library symlinks of the binaries package', () => {
  it('are recreated when the postinstall script did not run, and only once', () => {
    const root = mkdtempSync(join(tmpdir(), 'mp-pg-links-'));
    try {
      mkdirSync(join(root, 'native', 'lib'), { recursive: true });
      writeFileSync(join(root, 'native', 'lib', 'libpq.so.5.15'), '');
      writeFileSync(
        join(root, 'native', 'pg-symlinks.json'),
        JSON.stringify([
          { source: 'native/lib/libpq.so.5.15', target: 'native/lib/libpq.so.5' },
          { source: 'native/lib/libpq.so.5.15', target: 'native/lib/libpq.so' },
        ]),
      );
      expect(hydrateSymlinks(root)).toBe(2);
      expect(readlinkSync(join(root, 'native', 'lib', 'libpq.so.5'))).toBe('libpq.so.5.15');
      expect(hydrateSymlinks(root)).toBe(0);
      unlinkSync(join(root, 'native', 'lib', 'libpq.so'));
      expect(hydrateSymlinks(root)).toBe(1);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
