/** Small helpers for the platform benchmark: timing, HTTP polling, /proc memory, processes, statistics. */
import { type ChildProcess, execFile } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';

export const now = (): number => performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function log(msg: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

export interface Summary {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
  mean: number;
}

/** Percentile by linear interpolation between closest ranks (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = s[lo] as number;
  const b = s[hi] as number;
  return a + (b - a) * (rank - lo);
}

export function summarize(values: readonly number[]): Summary {
  const r = (x: number): number => Math.round(x * 10) / 10;
  return {
    n: values.length,
    min: r(Math.min(...values)),
    median: r(percentile(values, 50)),
    p90: r(percentile(values, 90)),
    max: r(Math.max(...values)),
    mean: r(values.reduce((a, b) => a + b, 0) / Math.max(values.length, 1)),
  };
}

export function ratio(a: number, b: number): number {
  return b === 0 ? Number.NaN : Math.round((a / b) * 100) / 100;
}

/** A port that was free a moment ago on 127.0.0.1. */
export { freePort } from '../../test/helpers/postgres-server.ts';

/**
 * A free port in 10000-19999, below the kernel's ephemeral range, for app processes that get restarted on the
 * same port (pm2, bare node): an outgoing connection can never be holding it when the app binds again.
 */
export async function freeLowPort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 10000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise<boolean>((res) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', () => res(false));
      srv.listen(port, () => srv.close(() => res(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port in 10000-19999');
}

export interface HttpResult {
  status: number;
  servedBy: string | undefined;
}

/** One GET on a fresh connection (no keep-alive), with an optional Host header. */
export function httpGet(port: number, host: string | undefined, timeoutMs = 2000): Promise<HttpResult> {
  return new Promise((res, rej) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/', method: 'GET', headers: host ? { host } : {}, agent: false },
      (r) => {
        r.resume();
        r.on('end', () => {
          const h = r.headers['x-served-by'];
          res({ status: r.statusCode ?? 0, servedBy: Array.isArray(h) ? h[0] : h });
        });
        r.on('error', rej);
      },
    );
    req.on('error', rej);
    req.setTimeout(timeoutMs, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

export interface PollOptions {
  port: number;
  host?: string;
  /** Pause between the end of one attempt and the start of the next. */
  intervalMs: number;
  timeoutMs: number;
  /** A 200 counts only when `x-served-by` differs from this pid (the killed process). */
  notServedBy?: number;
  /** Stop early (e.g. the deploy command failed). */
  abort?: () => string | undefined;
}

export interface PollResult {
  /** Time of the first accepted 200, relative to `start`. */
  ms: number;
  attempts: number;
  servedBy: string | undefined;
}

/** Polls GET / until the first 200 and returns the time since `start` (a performance.now() value). */
export async function pollFirst200(start: number, o: PollOptions): Promise<PollResult> {
  let attempts = 0;
  let last = 'no attempt';
  while (now() - start < o.timeoutMs) {
    const why = o.abort?.();
    if (why) throw new Error(why);
    attempts++;
    try {
      const r = await httpGet(o.port, o.host);
      const t = now();
      if (r.status === 200 && (o.notServedBy === undefined || r.servedBy !== String(o.notServedBy)))
        return { ms: t - start, attempts, servedBy: r.servedBy };
      last = `HTTP ${r.status}${r.servedBy ? ` from pid ${r.servedBy}` : ''}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(o.intervalMs);
  }
  throw new Error(
    `no 200 on port ${o.port}${o.host ? ` (Host ${o.host})` : ''} within ${o.timeoutMs} ms; last: ${last}`,
  );
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** execFile with an argument array; never rejects (the exit code is in the result). */
export function run(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  return new Promise((res) => {
    execFile(
      file,
      [...args],
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 120_000,
        killSignal: 'SIGKILL',
        maxBuffer: 32 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        res({
          code,
          stdout: String(stdout),
          stderr: String(stderr || (err && code !== 0 ? err.message : '')),
        });
      },
    );
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Waits for a child to exit; SIGKILLs it after `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  if (!(await within(exited, graceMs))) {
    child.kill('SIGKILL');
    await within(exited, 2000);
  }
}

/** Whether `p` settles within `ms`; the timer is cleared either way, so it keeps no event loop alive. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), t]);
  } finally {
    clearTimeout(timer);
  }
}

/** A process identity that survives pid reuse: the pid plus its start time (clock ticks since boot). */
export interface ProcId {
  pid: number;
  start: number;
}

export function procId(pid: number): ProcId | null {
  const st = statField(pid);
  return st ? { pid, start: st.start } : null;
}

function sameProcess(p: ProcId): boolean {
  const st = statField(p.pid);
  return st !== null && st.start === p.start && st.state !== 'Z';
}

/** Waits until every process is gone; SIGKILLs the survivors (the same processes, not reused pids) after `graceMs`. */
export async function reap(procs: readonly ProcId[], graceMs: number): Promise<number[]> {
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && procs.some(sameProcess)) await sleep(100);
  const left = procs.filter(sameProcess).map((p) => p.pid);
  for (const pid of left) tryKill(pid, 'SIGKILL');
  return left;
}

function statField(pid: number): { ppid: number; state: string; start: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ... field 22 is starttime; comm may contain spaces and parentheses
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '', ppid: Number(rest[1]), start: Number(rest[19]) };
  } catch {
    return null;
  }
}

/** Every live descendant of `root` (children, grandchildren, ...). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const st = statField(pid);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(pid);
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const pid = stack.pop() as number;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

export interface Mem {
  rssKiB: number;
  pssKiB: number | null;
  /** RssAnon: the process's own memory (heap, stacks), not the shared file pages of the node binary. */
  anonKiB?: number;
}

/** VmRSS and RssAnon from /proc/<pid>/status and Pss from /proc/<pid>/smaps_rollup (kB). */
export function memOf(pid: number): Mem {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  const anon = /^RssAnon:\s+(\d+)\s+kB/m.exec(status);
  let pss: number | null = null;
  try {
    const roll = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const p = /^Pss:\s+(\d+)\s+kB/m.exec(roll);
    if (p) pss = Number(p[1]);
  } catch {
    // smaps_rollup needs Linux >= 4.14; RSS is what we report anyway
  }
  return { rssKiB: Number(m[1]), pssKiB: pss, ...(anon ? { anonKiB: Number(anon[1]) } : {}) };
}

/** CPU time and I/O counters of a process, from /proc/<pid>/stat and /proc/<pid>/io. */
export interface CpuIo {
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
  /** Bytes passed to write(2) and friends (files, pipes, sockets). */
  wchar: number;
  /** Bytes this process caused to be sent to the storage layer. */
  writeBytes: number;
}

export function cpuIoOf(pid: number): CpuIo {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields after "(comm) ": state is field 3, utime field 14, stime field 15
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const num = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(io)?.[1] ?? Number.NaN);
  return {
    cpuTicks: Number(rest[11]) + Number(rest[12]),
    wchar: num('wchar'),
    writeBytes: num('write_bytes'),
  };
}

/** Finds an executable on PATH, like a shell would. */
export function which(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(':')) {
    if (!dir) continue;
    const f = `${dir}/${name}`;
    try {
      accessSync(f, constants.X_OK);
      if (statSync(f).isFile()) return f;
    } catch {
      // not here
    }
  }
  return undefined;
}
