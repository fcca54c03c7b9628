/** Router overhead: wrk against the app directly, through the MiniPaaS router, and through Caddy. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, log, now, pollFirst200, run, stopChild, which } from './lib.ts';

export interface WrkResult {
  target: string;
  url: string;
  requestsPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyAvgMs: number;
  requests: number;
  non2xx: number;
  socketErrors: string | null;
  raw: string;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  const unit = m[2];
  return unit === 'us' ? n / 1000 : unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
}

export function parseWrk(target: string, url: string, raw: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(raw);
  const p50 = /^\s+50%\s+(\S+)/m.exec(raw);
  const p99 = /^\s+99%\s+(\S+)/m.exec(raw);
  const avg = /^\s+Latency\s+(\S+)/m.exec(raw);
  const total = /(\d+) requests in/.exec(raw);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(raw);
  const sock = /Socket errors:\s*(.+)/.exec(raw);
  if (!rps || !p99) throw new Error(`could not parse wrk output:\n${raw}`);
  return {
    target,
    url,
    requestsPerSec: Math.round(Number(rps[1])),
    latencyP50Ms: p50 ? Math.round(toMs(p50[1] as string) * 100) / 100 : Number.NaN,
    latencyP99Ms: Math.round(toMs(p99[1] as string) * 100) / 100,
    latencyAvgMs: avg ? Math.round(toMs(avg[1] as string) * 100) / 100 : Number.NaN,
    requests: total ? Number(total[1]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sock ? (sock[1] as string).trim() : null,
    raw,
  };
}

export interface WrkOptions {
  durationS: number;
  threads: number;
  connections: number;
}

export async function wrk(
  target: string,
  url: string,
  host: string | undefined,
  o: WrkOptions,
  wrkBin: string,
): Promise<WrkResult> {
  const args = [`-t${o.threads}`, `-c${o.connections}`, `-d${o.durationS}s`, '--latency', '--timeout', '5s'];
  if (host) args.push('-H', `Host: ${host}`);
  args.push(url);
  const r = await run(wrkBin, args, { timeoutMs: (o.durationS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`wrk ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return parseWrk(target, url, r.stdout);
}

export interface Tools {
  wrk: string;
  caddy: string;
  note: string | null;
}

/** Finds wrk and caddy, installing them with apt-get when missing (root only). Null when unavailable. */
export async function ensureTools(): Promise<Tools | { note: string }> {
  let wrkBin = which('wrk');
  let caddyBin = which('caddy');
  let note: string | null = null;
  if (!wrkBin || !caddyBin) {
    if (process.getuid?.() !== 0) return { note: 'wrk or caddy missing and not root: router row skipped' };
    log('installing wrk and caddy with apt-get');
    let r = await run('apt-get', ['install', '-y', 'wrk', 'caddy'], {
      timeoutMs: 300_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (r.code !== 0) {
      await run('apt-get', ['update'], { timeoutMs: 300_000 });
      r = await run('apt-get', ['install', '-y', 'wrk', 'caddy'], {
        timeoutMs: 300_000,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    }
    wrkBin = which('wrk');
    caddyBin = which('caddy');
    if (r.code !== 0 || !wrkBin || !caddyBin)
      return { note: `apt-get install wrk caddy failed (${r.code}): router row skipped` };
    note = 'wrk and caddy installed with apt-get at run time';
  }
  return { wrk: wrkBin, caddy: caddyBin, note };
}

/** Caddy 2 as a plain reverse proxy to one upstream: admin API off, no automatic HTTPS, error-level logs. */
export class Caddy {
  port = 0;
  private dir = '';
  private child: ChildProcess | null = null;
  private out = '';

  private readonly bin: string;

  constructor(bin: string) {
    this.bin = bin;
  }

  async start(upstreamPort: number): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'caddy-bench-'));
    this.port = await freePort();
    const config = {
      admin: { disabled: true },
      logging: { logs: { default: { level: 'ERROR' } } },
      storage: { module: 'file_system', root: join(this.dir, 'data') },
      apps: {
        http: {
          servers: {
            bench: {
              listen: [`127.0.0.1:${this.port}`],
              automatic_https: { disable: true },
              routes: [
                {
                  handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: `127.0.0.1:${upstreamPort}` }] }],
                },
              ],
            },
          },
        },
      },
    };
    const file = join(this.dir, 'caddy.json');
    await writeFile(file, JSON.stringify(config));
    const env = {
      ...process.env,
      HOME: this.dir,
      XDG_DATA_HOME: join(this.dir, 'data'),
      XDG_CONFIG_HOME: join(this.dir, 'config'),
    };
    const child = spawn(this.bin, ['run', '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (d: Buffer): void => {
      this.out = (this.out + d.toString()).slice(-16 * 1024);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    await pollFirst200(now(), {
      port: this.port,
      intervalMs: 50,
      timeoutMs: 15_000,
      abort: () => (child.exitCode !== null ? `caddy exited ${child.exitCode}: ${this.out}` : undefined),
    });
  }

  async version(): Promise<string> {
    const r = await run(this.bin, ['version'], { timeoutMs: 10_000 });
    return r.stdout.trim().split(' ')[0] ?? 'unknown';
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child, 'SIGTERM', 5000);
    if (this.dir) await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
