import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AppSpec, loadConfig } from '@minipaas/core';
import pino from 'pino';
import { type AgentHandle, type StartAgentOptions, startAgent } from '../src/agent.ts';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const NODE = process.execPath;

/** A fresh MINIPAAS_HOME (mode 0700, like mkdtemp makes it). */
export function makeHome(): string {
  return mkdtempSync(join(tmpdir(), 'mp-agent-'));
}

/** Copies the fixtures into `<home>/releases/<app>/<version>` and returns that directory. */
export function makeRelease(home: string, app: string, version: string): string {
  const dir = join(home, 'releases', app, version);
  mkdirSync(dirname(dir), { recursive: true });
  cpSync(FIXTURES, dir, { recursive: true });
  return dir;
}

export function webSpec(home: string, app: string, version: string, over: Partial<AppSpec> = {}): AppSpec {
  return {
    name: app,
    release: version,
    dir: makeRelease(home, app, version),
    env: { GREETING: `hello from ${version}` },
    processes: { web: { command: `${NODE} web.js`, instances: 1 } },
    ...over,
  };
}

/**
 * A random, probably free range of 200 ports for app instances, below Linux's ephemeral range
 * (32768+), where client connections in TIME_WAIT would make ports unbindable.
 */
export function portRange(): { min: number; max: number } {
  const min = 20000 + Math.floor(Math.random() * 60) * 200;
  return { min, max: min + 199 };
}

export async function startTestAgent(
  home: string,
  opts: Partial<StartAgentOptions> & { env?: Record<string, string> } = {},
): Promise<AgentHandle> {
  const range = portRange();
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_APP_PORT_MIN: String(range.min),
    MINIPAAS_APP_PORT_MAX: String(range.max),
    MINIPAAS_STOP_GRACE_MS: '3000',
    MINIPAAS_START_TIMEOUT_MS: '15000',
    ...opts.env,
  });
  return startAgent({
    config,
    router: { host: '127.0.0.1', port: 0 },
    logger: pino({ level: process.env.MINIPAAS_TEST_LOG ?? 'silent' }),
    policy: { fastCrashMs: 3000, maxFastCrashes: 4, backoffMs: [0, 100, 200, 400] },
    drainTimeoutMs: 5000,
    ...opts,
  });
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request through a fresh connection (so the Host header can be set). */
export function httpGet(
  port: number,
  path: string,
  host = 'localhost',
  opts: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: { host, ...opts.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(opts.body);
  });
}

/** Polls `fn` until it returns a truthy value (or throws after `timeoutMs`). */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True when the process exists and is not a zombie (pid 1 in containers may never reap orphans). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function removeHome(home: string): void {
  rmSync(home, { recursive: true, force: true });
}
