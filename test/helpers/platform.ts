/**
 * Starts the real MiniPaaS programs (`minipaas up`: supervisor + agent + minipaasd) with a temporary
 * MINIPAAS_HOME and free ports, runs the real CLI against them, and cleans up every process.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { embeddedPostgres } from '@minipaas/postgres';
import { createTestDatabase } from './postgres.ts';
import { freePort } from './postgres-server.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI_BIN = join(ROOT, 'packages', 'cli', 'bin', 'minipaas.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Platform {
  home: string;
  apiUrl: string;
  routerUrl: string;
  routerPort: number;
  token: string;
  env: NodeJS.ProcessEnv;
  supervisor: ChildProcess;
  output: () => string;
  cli(args: string[], opts?: { timeoutMs?: number; cwd?: string }): Promise<CliResult>;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A temp MINIPAAS_HOME and the environment that points every MiniPaaS program at it, with free API and
 * router ports and an app port range below the kernel's ephemeral range (32768+), so a client socket in
 * TIME_WAIT can never hold a port an app needs.
 */
export async function platformEnv(
  prefix = 'mp-e2e-',
  extraEnv: Record<string, string> = {},
): Promise<{ home: string; env: NodeJS.ProcessEnv; apiPort: number; routerPort: number }> {
  const home = await mkdtemp(join(tmpdir(), prefix));
  const apiPort = await freePort();
  const routerPort = await freePort();
  const portMin = 21000 + Math.floor(Math.random() * 80) * 100;
  // Each test platform its own block of app uids: platforms running in parallel must not create and
  // delete each other's OS users (one install per range, as in production).
  const uidMin = 100_000 + Math.floor(Math.random() * 9000) * 100;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MINIPAAS_HOME: home,
    MINIPAAS_API_PORT: String(apiPort),
    MINIPAAS_ROUTER_PORT: String(routerPort),
    MINIPAAS_ROUTER_HOST: '127.0.0.1',
    MINIPAAS_APP_PORT_MIN: String(portMin),
    MINIPAAS_APP_PORT_MAX: String(portMin + 99),
    MINIPAAS_APP_UID_MIN: String(uidMin),
    MINIPAAS_APP_UID_MAX: String(uidMin + 99),
    MINIPAAS_STOP_GRACE_MS: '3000',
    MINIPAAS_START_TIMEOUT_MS: '20000',
    MINIPAAS_LOG_LEVEL: 'warn',
    MINIPAAS_URL: '',
    MINIPAAS_TOKEN: '',
    XDG_CONFIG_HOME: join(home, 'xdg'),
    HOME: home,
    NO_COLOR: '1',
    // The embedded PostgreSQL cluster of a test home skips fsync (initdb ~3x faster); never in production.
    MINIPAAS_PG_UNSAFE_NO_SYNC: '1',
    ...extraEnv,
  };
  // MINIPAAS_TEST_E2E_DATABASE=external: every platform keeps its state in a fresh database of the test
  // server (DATABASE_URL) instead of starting its embedded one, so the whole e2e suite runs on both.
  if (process.env.MINIPAAS_TEST_E2E_DATABASE === 'external' && !('DATABASE_URL' in extraEnv)) {
    env.DATABASE_URL = (await createTestDatabase('e2e')).url;
  }
  return { home, env, apiPort, routerPort };
}

export async function startPlatform(extraEnv: Record<string, string> = {}): Promise<Platform> {
  const { home, env, apiPort, routerPort } = await platformEnv('mp-e2e-', extraEnv);
  let out = '';
  const supervisor = spawn(process.execPath, [CLI_BIN, 'up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  supervisor.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  supervisor.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  try {
    await waitFor(
      'the platform to be ready',
      async () => {
        if (supervisor.exitCode !== null)
          throw new Error(`minipaas up exited ${supervisor.exitCode}: ${out}`);
        const r = await fetch(`${apiUrl}/health/ready`);
        return r.status === 200;
      },
      45_000,
      200,
    );
  } catch (err) {
    supervisor.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n--- output:\n${out}`);
  }
  const token = (await readFile(join(home, 'admin-token'), 'utf8')).trim();
  const platform: Platform = {
    home,
    apiUrl,
    routerUrl: `http://127.0.0.1:${routerPort}`,
    routerPort,
    token,
    env,
    supervisor,
    output: () => out,
    cli(args, opts = {}) {
      return new Promise((res) => {
        execFile(
          process.execPath,
          [CLI_BIN, ...args],
          { env, cwd: opts.cwd ?? ROOT, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            res({ code, stdout, stderr });
          },
        );
      });
    },
    async api(method, path, body) {
      const r = await fetch(`${apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      const text = await r.text();
      return { status: r.status, body: (text ? JSON.parse(text) : null) as never };
    },
    async stop() {
      if (supervisor.exitCode === null) {
        const exited = new Promise((r) => supervisor.once('exit', r));
        supervisor.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
        if (supervisor.exitCode === null) supervisor.kill('SIGKILL');
      }
      // A supervisor that had to be killed leaves its PostgreSQL server running.
      await embeddedPostgres({ home })
        .stop()
        .catch(() => undefined);
      await rm(home, { recursive: true, force: true }).catch(() => undefined);
    },
  };
  return platform;
}

/** GET through the router with a Host header (Node's fetch cannot set Host, so use http.request). */
export async function routerGet(
  port: number,
  path: string,
  host?: string,
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const http = await import('node:http');
  return new Promise((res, rej) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: 'GET', headers: host ? { host } : {}, agent: false },
      (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => {
          body += c;
        });
        r.on('end', () => res({ status: r.statusCode ?? 0, body, headers: r.headers }));
      },
    );
    req.on('error', rej);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}
