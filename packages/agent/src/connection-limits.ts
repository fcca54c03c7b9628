import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

/**
 * The soft `RLIMIT_NOFILE` of this process, read from `/proc/self/limits`; null where there is no
 * such file (not Linux) or the limit is `unlimited`. Node raises the soft limit to the hard one at
 * start, so this is the number of descriptors the agent really has.
 */
export function fdSoftLimit(file = '/proc/self/limits'): number | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!m || m[1] === 'unlimited') return null;
  return Number(m[1]);
}

/**
 * The most client connections the router may hold with `softLimit` descriptors: each proxied
 * connection can hold a second descriptor upstream, and a reserve (a quarter of the limit, at most
 * 1024) stays for the rest of the agent (app pipes, log files, its API socket). The configured
 * value is kept when it fits.
 */
export function connectionCap(configured: number, softLimit: number | null): number {
  if (softLimit === null) return configured;
  const reserve = Math.min(1024, Math.floor(softLimit / 4));
  return Math.max(1, Math.min(configured, Math.floor((softLimit - reserve) / 2)));
}

/** Normalises an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) to its IPv4 form. */
export function plainAddress(address: string | undefined): string {
  const a = address ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/**
 * Counts the open connections of every client address and refuses those over `max`. A WebSocket
 * stays counted until its socket closes.
 */
export class ClientConnectionLimiter {
  private readonly open = new Map<string, number>();
  private readonly max: number;
  /** Connections refused since start. */
  refused = 0;

  constructor(max: number) {
    this.max = max;
  }

  /** Counts `socket` against its address until it closes; false (and nothing counted) when over the limit. */
  admit(socket: Socket): boolean {
    const addr = plainAddress(socket.remoteAddress);
    const n = this.open.get(addr) ?? 0;
    if (n >= this.max) {
      this.refused++;
      return false;
    }
    this.open.set(addr, n + 1);
    socket.once('close', () => {
      const left = (this.open.get(addr) ?? 1) - 1;
      if (left <= 0) this.open.delete(addr);
      else this.open.set(addr, left);
    });
    return true;
  }

  /** Open connections of `address` (for tests and diagnostics). */
  count(address: string): number {
    return this.open.get(address) ?? 0;
  }
}
