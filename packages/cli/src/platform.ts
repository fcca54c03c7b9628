/** Local platform plumbing for `up`/`down`: pid files, the agent's unix socket, readiness polling. */
import { readdirSync, readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentHealth } from '@minipaas/core';

/** The API URL a client uses to reach a server bound to `host:port`. */
export function apiUrlFor(host: string, port: number): string {
  const h = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host;
  return `http://${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${port}`;
}

/** Reads a pid file; undefined when missing or garbage. */
export function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The fields of /proc/<pid>/stat that `up`/`down` need. */
export interface ProcStat {
  /** One letter: R, S, D, Z (zombie), … */
  state: string;
  ppid: number;
  pgid: number;
  /** Kernel start time (clock ticks since boot): with the pid, identifies a process across pid reuse. */
  start: string;
}

/** Reads /proc/<pid>/stat; undefined when the process is gone or there is no /proc. */
export function procStat(pid: number): ProcStat | undefined {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone, or no /proc (macOS)
  }
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', ppid: Number(rest[1]), pgid: Number(rest[2]), start: rest[19] ?? '' };
}

/**
 * True when a process with this pid exists and is not a zombie (and, on Linux, looks like part of
 * MiniPaaS when `match` is given). A zombie is dead: it only waits for a parent that may never reap it.
 */
export function isAlive(pid: number, match?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (procStat(pid)?.state === 'Z') return false;
  if (!match) return true;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(match);
  } catch {
    return true; // no /proc (macOS): trust kill(0)
  }
}

export function removeFile(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value or `timeoutMs` passes (then undefined). */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) return undefined;
    await sleep(intervalMs);
  }
}

/** One HTTP request to the agent over its unix socket. */
export function agentRequest(
  socketPath: string,
  method: string,
  path: string,
  timeoutMs = 2000,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method, path, timeout: timeoutMs, headers: { accept: 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // keep text
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('agent request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The agent's health, or undefined when nothing answers on the socket. */
export async function agentHealth(socketPath: string): Promise<AgentHealth | undefined> {
  try {
    const res = await agentRequest(socketPath, 'GET', '/v1/health');
    return res.status === 200 ? (res.body as AgentHealth) : undefined;
  } catch {
    return undefined;
  }
}

export interface Readiness {
  ready: boolean;
  /** Why not: `connection refused`, or the failing checks. */
  detail: string;
}

/** What `httpGet` returns. */
export interface HttpAnswer {
  status: number;
  contentType: string;
  text: string;
}

/**
 * One plain-HTTP GET on a new connection. Not `fetch`: its HTTP parser is a WebAssembly instance that the
 * long-lived supervisor would keep for its lifetime (~10 MB of its own memory, issue 7).
 */
export function httpGet(url: string, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'GET', agent: false, signal: AbortSignal.timeout(timeoutMs) },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'] ?? '', text }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** `GET {apiUrl}/health/ready`. */
export async function apiReadiness(apiUrl: string): Promise<Readiness> {
  try {
    const res = await httpGet(`${apiUrl}/health/ready`, 2000);
    if (res.status >= 200 && res.status < 300) return { ready: true, detail: 'ready' };
    let detail = `HTTP ${res.status}`;
    try {
      const body = JSON.parse(res.text) as { checks?: Record<string, string> };
      if (body.checks) {
        const bad = Object.entries(body.checks).filter(([, v]) => v !== 'ok');
        if (bad.length) detail = bad.map(([k, v]) => `${k}: ${v}`).join(', ');
      }
    } catch {
      // keep status
    }
    return { ready: false, detail };
  } catch (err) {
    return {
      ready: false,
      detail:
        (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'not listening yet' : (err as Error).message,
    };
  }
}

/** True when something answers `GET {apiUrl}/health`. */
export async function apiAnswers(apiUrl: string): Promise<boolean> {
  try {
    return (await httpGet(`${apiUrl}/health`, 1500)).status < 500;
  } catch {
    return false;
  }
}

/** Absolute path of a workspace package's bin: via the package's export, else relative to this package. */
export function packageBin(pkg: string, sibling: string, bin: string): string {
  try {
    const entry = fileURLToPath(import.meta.resolve(pkg)); // <pkg>/src/index.ts
    return join(dirname(entry), '..', 'bin', bin);
  } catch {
    return fileURLToPath(new URL(`../../${sibling}/bin/${bin}`, import.meta.url));
  }
}

/** The CLI's own bin. */
export const CLI_BIN = fileURLToPath(new URL('../bin/minipaas.js', import.meta.url));

/** The supervisor's lean bin: what `minipaas up` runs (src/supervisor-main.ts). */
export const SUPERVISOR_BIN = fileURLToPath(new URL('../bin/minipaas-supervisor.js', import.meta.url));

/** The last `n` lines of a file from byte `offset` on. */
export function tailFile(file: string, n: number, offset = 0): string[] {
  try {
    const buf = readFileSync(file);
    const lines = buf.subarray(Math.min(offset, buf.length)).toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-n);
  } catch {
    return [];
  }
}

/** A process listening on a TCP port, as far as /proc tells (same user, or root). */
export interface Listener {
  pid: number;
  /** Its command line, arguments joined with spaces. */
  command: string;
}

/** The process listening on TCP `port` (any address), or undefined when unknown (no /proc, not visible). */
export function listenerOf(port: number): Listener | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6, or no /proc
    }
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      const local = f[1];
      if (!local || f[3] !== '0A') continue; // 0A = LISTEN
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && f[9]) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // exited meanwhile, or another user's
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue; // closed meanwhile
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m?.[1] && inodes.has(m[1])) {
        let command = '';
        try {
          command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
        } catch {
          command = '(exited)';
        }
        return { pid: Number(pid), command };
      }
    }
  }
  return undefined;
}
