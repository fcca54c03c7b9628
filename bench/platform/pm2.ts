/**
 * pm2, the peer: installed at run time into bench/.scratch (gitignored), run with its own PM2_HOME in a temp
 * dir, with pm2's defaults (fork mode, autorestart, restart_delay 0, no exponential backoff, min_uptime 1 s,
 * max_restarts 16), and stopped with `pm2 kill` at the end.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, log, type ProcId, procId, reap, run, which } from './lib.ts';
import { ROOT } from './minipaas.ts';

export const SCRATCH = join(ROOT, 'bench', '.scratch');
const PM2_BIN = join(SCRATCH, 'node_modules', 'pm2', 'bin', 'pm2');
const PM2_PKG = join(SCRATCH, 'node_modules', 'pm2', 'package.json');

export interface Pm2Proc {
  name: string;
  pid: number;
  status: string;
  restarts: number;
  port: number;
}

function installedVersion(): string | undefined {
  if (!existsSync(PM2_PKG)) return undefined;
  return (JSON.parse(readFileSync(PM2_PKG, 'utf8')) as { version: string }).version;
}

/** `npm install --prefix bench/.scratch pm2@7` unless pm2 7 is already there. */
export async function ensurePm2(): Promise<string> {
  const have = installedVersion();
  if (have?.startsWith('7.')) return have;
  const npm = which('npm');
  if (!npm) throw new Error('npm not found on PATH');
  log('installing pm2@7 into bench/.scratch');
  const r = await run(npm, ['install', '--prefix', SCRATCH, '--no-audit', '--no-fund', 'pm2@7'], {
    timeoutMs: 240_000,
  });
  if (r.code !== 0) throw new Error(`npm install pm2@7 failed (${r.code}): ${r.stderr.trim().slice(-2000)}`);
  const v = installedVersion();
  if (!v) throw new Error('pm2 did not install');
  return v;
}

export class Pm2 {
  home = '';
  env: NodeJS.ProcessEnv = {};
  private started = false;
  private procs: ProcId[] = [];

  async init(): Promise<void> {
    this.home = await mkdtemp(join(tmpdir(), 'pm2-bench-'));
    this.env = { ...process.env, PM2_HOME: this.home };
  }

  async cmd(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<string> {
    const r = await run(process.execPath, [PM2_BIN, ...args], {
      env: { ...this.env, ...extraEnv },
      cwd: ROOT,
      timeoutMs: 60_000,
    });
    if (r.code !== 0) throw new Error(`pm2 ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `pm2 start server.js --name NAME --interpreter NODE` with PORT in the environment. */
  async start(script: string, name: string, port: number, interpreter: string): Promise<void> {
    this.started = true;
    await this.cmd(['start', script, '--name', name, '--interpreter', interpreter], { PORT: String(port) });
    this.remember();
  }

  async jlist(): Promise<Pm2Proc[]> {
    const out = await this.cmd(['jlist']);
    const start = out.indexOf('[');
    const list = JSON.parse(out.slice(start)) as Array<{
      name: string;
      pid: number;
      pm2_env: { status: string; restart_time: number; PORT?: string; env?: { PORT?: string } };
    }>;
    return list.map((p) => ({
      name: p.name,
      pid: p.pid,
      status: p.pm2_env.status,
      restarts: p.pm2_env.restart_time,
      port: Number(p.pm2_env.PORT ?? p.pm2_env.env?.PORT ?? 0),
    }));
  }

  async proc(name: string): Promise<Pm2Proc> {
    const p = (await this.jlist()).find((x) => x.name === name);
    if (p?.status !== 'online' || !p.pid) throw new Error(`pm2 app ${name} not online: ${JSON.stringify(p)}`);
    return p;
  }

  daemonPid(): number {
    const pid = Number(readFileSync(join(this.home, 'pm2.pid'), 'utf8').trim());
    if (!pid || !isAlive(pid)) throw new Error('pm2 daemon not running');
    return pid;
  }

  /** Remembers the daemon and the app processes so stop() can make sure none survives. */
  remember(): void {
    try {
      const d = procId(this.daemonPid());
      if (d && !this.procs.some((p) => p.pid === d.pid)) this.procs.push(d);
    } catch {
      // not started
    }
  }

  async version(): Promise<string> {
    return installedVersion() ?? 'unknown';
  }

  async stop(): Promise<void> {
    if (this.started) {
      this.remember();
      try {
        for (const p of await this.jlist()) {
          const id = procId(p.pid);
          if (id) this.procs.push(id);
        }
      } catch {
        // the daemon may be gone already
      }
      log('stopping pm2 (pm2 kill)');
      try {
        await this.cmd(['kill']);
      } catch (err) {
        log(`pm2 kill failed: ${(err as Error).message}`);
      }
      const left = await reap(this.procs, 5000);
      if (left.length) log(`had to SIGKILL leftover pm2 processes: ${left.join(', ')}`);
    }
    if (this.home) await rm(this.home, { recursive: true, force: true }).catch(() => undefined);
  }
}
