/**
 * Starts the real MiniPaaS (`minipaas up` in the foreground: supervisor + agent + minipaasd) on a temporary
 * MINIPAAS_HOME with free ports, the same way test/helpers/platform.ts does, and drives it with the real CLI.
 * Platform settings are the defaults except home, ports and the app port range.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  cmdline,
  descendants,
  type ExecResult,
  freePort,
  isAlive,
  log,
  type ProcId,
  procId,
  reap,
  run,
  sleep,
  stopChild,
} from './lib.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
/**
 * The checkout whose platform is measured: this one, or `BENCH_PLATFORM_ROOT` (e.g. an older commit unpacked
 * next to it, for a before/after comparison run by this harness).
 */
export const PLATFORM_ROOT = process.env.BENCH_PLATFORM_ROOT
  ? resolve(process.env.BENCH_PLATFORM_ROOT)
  : ROOT;
export const CLI_BIN = join(PLATFORM_ROOT, 'packages', 'cli', 'bin', 'minipaas.js');

export interface InstanceJson {
  id: string;
  app: string;
  processType: string;
  pid: number | null;
  port: number | null;
  status: string;
  restarts: number;
  startedAt: string | null;
}

export class MiniPaaS {
  home = '';
  apiPort = 0;
  routerPort = 0;
  env: NodeJS.ProcessEnv = {};
  up: ChildProcess | null = null;
  /** Platform + app processes alive at stop time, SIGKILLed if they outlive the SIGTERM. */
  private seen: ProcId[] = [];
  private out = '';

  async start(): Promise<void> {
    this.home = await mkdtemp(join(tmpdir(), 'mp-bench-'));
    this.apiPort = await freePort();
    this.routerPort = await freePort();
    // a random block of 100 inside the default 20000-29999: below the kernel's ephemeral range (32768+), so
    // no client socket (wrk, the pollers) can take an app's port; random so parallel platforms rarely collide
    const portMin = 20000 + Math.floor(Math.random() * 99) * 100;
    this.env = {
      ...process.env,
      MINIPAAS_HOME: this.home,
      MINIPAAS_API_PORT: String(this.apiPort),
      MINIPAAS_ROUTER_PORT: String(this.routerPort),
      MINIPAAS_ROUTER_HOST: '127.0.0.1',
      MINIPAAS_APP_PORT_MIN: String(portMin),
      MINIPAAS_APP_PORT_MAX: String(portMin + 99),
      MINIPAAS_URL: '',
      MINIPAAS_TOKEN: '',
      // the CLI must use this platform's admin token, not a saved login
      HOME: this.home,
      XDG_CONFIG_HOME: join(this.home, 'xdg'),
      NO_COLOR: '1',
    };
    await this.launch();
  }

  /** Stops `minipaas up` and starts it again on the same home (an existing home: no initdb). */
  async restart(): Promise<void> {
    const up = this.up;
    if (up) await stopChild(up, 'SIGTERM', 30_000);
    await this.launch();
  }

  /** Spawns `minipaas up` on this home and waits until the API is ready. */
  private async launch(): Promise<void> {
    const up = spawn(process.execPath, [CLI_BIN, 'up'], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.up = up;
    const keep = (d: Buffer): void => {
      this.out = (this.out + d.toString()).slice(-64 * 1024);
    };
    up.stdout?.on('data', keep);
    up.stderr?.on('data', keep);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (up.exitCode !== null) throw new Error(`minipaas up exited with ${up.exitCode}:\n${this.out}`);
      if (Date.now() > deadline) throw new Error(`minipaas up not ready within 60 s:\n${this.out}`);
      try {
        const r = await fetch(`http://127.0.0.1:${this.apiPort}/health/ready`);
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
  }

  output(): string {
    return this.out;
  }

  /** The supervisor (`minipaas up`), the agent and minipaasd. */
  platformPids(): { supervisor: number; agent: number; minipaasd: number } {
    const supervisor = this.up?.pid;
    if (!supervisor) throw new Error('platform not started');
    let agent = 0;
    let minipaasd = 0;
    for (const pid of descendants(supervisor)) {
      const cmd = cmdline(pid);
      if (cmd.includes('minipaas-agent')) agent = pid;
      else if (cmd.includes('minipaasd')) minipaasd = pid;
    }
    if (!agent || !minipaasd) throw new Error(`agent (${agent}) or minipaasd (${minipaasd}) not found`);
    return { supervisor, agent, minipaasd };
  }

  /**
   * Every process of the platform itself by role: supervisor, agent, minipaasd, and any other process the
   * supervisor runs (e.g. a database server, keyed `<name>:<pid>`); never the apps (the agent's children).
   */
  platformProcesses(): Record<string, number> {
    const { supervisor, agent, minipaasd } = this.platformPids();
    const out: Record<string, number> = { supervisor, agent, minipaasd };
    const skip = new Set([agent, minipaasd, ...descendants(agent), ...descendants(minipaasd)]);
    for (const pid of descendants(supervisor)) {
      if (skip.has(pid)) continue;
      // PostgreSQL's workers rename themselves `postgres: checkpointer` and the like
      const name = (cmdline(pid).split(' ')[0] ?? '').split('/').pop()?.replace(/:$/, '') || 'process';
      out[`${name}:${pid}`] = pid;
    }
    // minipaasd's build worker (started on demand, exits 30 s after its last build) counts while it lives
    for (const pid of this.buildWorkerPids(minipaasd)) out[`build-worker:${pid}`] = pid;
    return out;
  }

  /** The build worker processes minipaasd runs right now (none when idle). */
  buildWorkerPids(minipaasd = this.platformPids().minipaasd): number[] {
    return descendants(minipaasd).filter((pid) => cmdline(pid).includes('build-worker'));
  }

  /** Records every live descendant so stop() can make sure none survives. */
  private remember(): void {
    if (!this.up?.pid) return;
    for (const pid of descendants(this.up.pid)) {
      const id = procId(pid);
      if (id) this.seen.push(id);
    }
  }

  cli(args: readonly string[], timeoutMs = 120_000): Promise<ExecResult> {
    return run(process.execPath, [CLI_BIN, ...args], { env: this.env, cwd: ROOT, timeoutMs });
  }

  /** Spawns the CLI without waiting, so the caller can poll while it runs. */
  spawnCli(args: readonly string[]): { child: ChildProcess; done: Promise<ExecResult> } {
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      env: this.env,
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const done = new Promise<ExecResult>((res) => {
      child.on('error', (err) => res({ code: 1, stdout, stderr: `${stderr}${err.message}` }));
      child.on('close', (code, signal) => res({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    });
    return { child, done };
  }

  /** GET on the control plane's API with the admin token of this home. */
  async api<T>(path: string): Promise<T> {
    const token = (await readFile(join(this.home, 'admin-token'), 'utf8')).trim();
    const res = await fetch(`http://127.0.0.1:${this.apiPort}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  async ps(app: string): Promise<InstanceJson[]> {
    const r = await this.cli(['ps', app, '--json'], 30_000);
    if (r.code !== 0) throw new Error(`minipaas ps ${app} --json exited ${r.code}: ${r.stderr.trim()}`);
    const parsed = JSON.parse(r.stdout) as InstanceJson[] | { instances: InstanceJson[] };
    return Array.isArray(parsed) ? parsed : parsed.instances;
  }

  /** The single running web instance of an app. */
  async webInstance(app: string): Promise<InstanceJson & { pid: number; port: number }> {
    const list = (await this.ps(app)).filter((i) => i.processType === 'web' && i.status === 'running');
    const i = list[0];
    if (list.length !== 1 || !i || !i.pid || !i.port)
      throw new Error(`expected one running web instance of ${app}, got ${JSON.stringify(list)}`);
    return i as InstanceJson & { pid: number; port: number };
  }

  hostHeader(app: string): string {
    return `${app}.localhost:${this.routerPort}`;
  }

  async stop(): Promise<void> {
    const up = this.up;
    if (up) {
      this.remember();
      log('stopping MiniPaaS (SIGTERM to minipaas up)');
      await stopChild(up, 'SIGTERM', 30_000);
      if (up.exitCode !== 0 && up.signalCode === null && up.exitCode !== null)
        log(`minipaas up exited with ${up.exitCode}`);
      const left = await reap(this.seen, 5000);
      if (left.length) log(`had to SIGKILL leftover platform/app processes: ${left.join(', ')}`);
      if (up.pid && isAlive(up.pid)) log(`warning: minipaas up (pid ${up.pid}) still alive`);
    }
    if (this.home) await rm(this.home, { recursive: true, force: true }).catch(() => undefined);
  }
}
