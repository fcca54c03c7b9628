/**
 * Idle cost: CPU time (utime + stime from /proc/<pid>/stat) and bytes written (wchar and write_bytes from
 * /proc/<pid>/io) of the platform's own processes and of pm2's daemon over a window in which nothing is
 * asked of either, scaled to one minute. Memory (RSS, PSS, RssAnon) is sampled at the end of the window.
 */
import { type CpuIo, cpuIoOf, type Mem, memOf, run, sleep } from './lib.ts';

/** Per-minute rates of one process (or a sum of processes) over an idle window. */
export interface IdleRate {
  cpuMsPerMin: number;
  /** wchar: every byte written (files, pipes, sockets: includes the control plane ↔ agent protocol). */
  wcharKiBPerMin: number;
  /** write_bytes: bytes sent towards the disk. */
  writeKiBPerMin: number;
}

/** The platform's long-lived processes: one of them exiting during a window is a failure, not noise. */
const PLATFORM_ROLES = { supervisor: 1, agent: 1, minipaasd: 1 };

export interface IdleWindow {
  apps: number;
  seconds: number;
  /** Per process: `supervisor`, `agent`, `minipaasd`, `pm2Daemon` (and any other platform process). */
  processes: Record<string, IdleRate>;
  minipaas: IdleRate;
  pm2: IdleRate;
  memory: Record<string, Mem>;
  /**
   * Processes that exited during the window (e.g. a PostgreSQL autovacuum worker, or the build worker),
   * not counted: their last counters cannot be read after they are gone.
   */
  vanished: string[];
}

/** Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless it says otherwise). */
export async function clockTicks(): Promise<number> {
  const r = await run('getconf', ['CLK_TCK'], { timeoutMs: 5000 });
  const n = Number(r.stdout.trim());
  return r.code === 0 && n > 0 ? n : 100;
}

function rate(a: CpuIo, b: CpuIo, seconds: number, clk: number): IdleRate {
  const perMin = 60 / seconds;
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  return {
    cpuMsPerMin: r1((((b.cpuTicks - a.cpuTicks) * 1000) / clk) * perMin),
    wcharKiBPerMin: r1(((b.wchar - a.wchar) / 1024) * perMin),
    writeKiBPerMin: r1(((b.writeBytes - a.writeBytes) / 1024) * perMin),
  };
}

function sum(rates: IdleRate[]): IdleRate {
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  return {
    cpuMsPerMin: r1(rates.reduce((t, r) => t + r.cpuMsPerMin, 0)),
    wcharKiBPerMin: r1(rates.reduce((t, r) => t + r.wcharKiBPerMin, 0)),
    writeKiBPerMin: r1(rates.reduce((t, r) => t + r.writeKiBPerMin, 0)),
  };
}

/**
 * Measures one idle window: counters of every process before and after `seconds` of doing nothing.
 * `minipaas` are the platform's processes by role, `pm2Daemon` pm2's God daemon.
 */
export async function idleWindow(
  apps: number,
  minipaas: Record<string, number>,
  pm2Daemon: number,
  seconds: number,
  clk: number,
): Promise<IdleWindow> {
  const read = (pid: number): CpuIo | null => {
    try {
      return cpuIoOf(pid);
    } catch {
      return null;
    }
  };
  const all: Record<string, number> = { ...minipaas, pm2Daemon };
  const before = Object.fromEntries(Object.entries(all).map(([k, pid]) => [k, read(pid)]));
  await sleep(seconds * 1000);
  const after = Object.fromEntries(Object.entries(all).map(([k, pid]) => [k, read(pid)]));
  const gone = Object.keys(all).filter((k) => !before[k] || !after[k]);
  if (gone.includes('pm2Daemon') || gone.some((k) => k in PLATFORM_ROLES))
    throw new Error(`${gone.join(', ')} exited during the idle window`);
  const alive = Object.keys(all).filter((k) => !gone.includes(k));
  const processes: Record<string, IdleRate> = {};
  for (const k of alive) processes[k] = rate(before[k] as CpuIo, after[k] as CpuIo, seconds, clk);
  const memory = Object.fromEntries(alive.map((k) => [k, memOf(all[k] as number)]));
  return {
    apps,
    seconds,
    processes,
    minipaas: sum(
      Object.keys(minipaas)
        .filter((k) => alive.includes(k))
        .map((k) => processes[k] as IdleRate),
    ),
    pm2: processes.pm2Daemon as IdleRate,
    memory,
    vanished: gone,
  };
}
