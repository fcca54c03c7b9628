/** Local platform plumbing for `up`/`down`: pid files, the agent's unix socket, readiness polling. */
import { readFileSync, unlinkSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentHealth } from '@minipaas/core';

/** Reads a pid file; undefined when missing or garbage. */
export function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when a process with this pid exists (and, on Linux, looks like part of MiniPaaS when `match` is given). */
export function isAlive(pid: number, match?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
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

/** `GET {apiUrl}/health/ready`. */
export async function apiReadiness(apiUrl: string): Promise<Readiness> {
  try {
    const res = await fetch(`${apiUrl}/health/ready`, { signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    if (res.ok) return { ready: true, detail: 'ready' };
    let detail = `HTTP ${res.status}`;
    try {
      const body = JSON.parse(text) as { checks?: Record<string, string> };
      if (body.checks) {
        const bad = Object.entries(body.checks).filter(([, v]) => v !== 'ok');
        if (bad.length) detail = bad.map(([k, v]) => `${k}: ${v}`).join(', ');
      }
    } catch {
      // keep status
    }
    return { ready: false, detail };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return {
      ready: false,
      detail: cause?.code === 'ECONNREFUSED' ? 'not listening yet' : (err as Error).message,
    };
  }
}

/** True when something answers `GET {apiUrl}/health`. */
export async function apiAnswers(apiUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(1500) });
    await res.arrayBuffer();
    return res.status < 500;
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

/** The CLI's own bin (used to start the supervisor in the background). */
export const CLI_BIN = fileURLToPath(new URL('../bin/minipaas.js', import.meta.url));

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
