import { readdirSync, readFileSync } from 'node:fs';
import type { InstanceCgroup } from './cgroup.ts';

/** The fields of /proc/<pid>/stat the agent needs. */
export interface ProcStat {
  pid: number;
  /** One letter: R, S, D, Z, … */
  state: string;
  ppid: number;
  pgid: number;
  /** Kernel start time (clock ticks since boot): with the pid, identifies a process across pid reuse. */
  start: string;
}

/** Reads /proc/<pid>/stat, or null when the process is gone. */
export function procStat(pid: number): ProcStat | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null; // the process is gone (or never existed)
  }
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: rest[0] ?? '?',
    ppid: Number(rest[1]),
    pgid: Number(rest[2]),
    start: rest[19] ?? '',
  };
}

/** True when the process exists and is not a zombie (a zombie holds no resources and cannot be killed). */
export function isAlive(pid: number): boolean {
  const st = procStat(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

/** Every live process on the machine. */
function snapshot(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (st && st.state !== 'Z' && st.state !== 'X') out.push(st);
  }
  return out;
}

/** Live processes descending from `root` by parent pid (`root` excluded). */
function descendantsIn(all: ProcStat[], root: number): ProcStat[] {
  const children = new Map<number, ProcStat[]>();
  for (const p of all) {
    const list = children.get(p.ppid);
    if (list) list.push(p);
    else children.set(p.ppid, [p]);
  }
  const out: ProcStat[] = [];
  const queue = [root];
  for (let pid = queue.pop(); pid !== undefined; pid = queue.pop()) {
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      queue.push(c.pid);
    }
  }
  return out;
}

/** True when the environment of `pid` holds exactly `entry` (`NAME=value`). */
function hasEnvEntry(pid: number, entry: Buffer): boolean {
  let env: Buffer;
  try {
    env = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false; // gone, or another user's process we may not read (then it is not ours either)
  }
  for (let at = env.indexOf(entry); at !== -1; at = env.indexOf(entry, at + 1)) {
    const startsEntry = at === 0 || env[at - 1] === 0;
    const endsEntry = at + entry.length === env.length || env[at + entry.length] === 0;
    if (startsEntry && endsEntry) return true;
  }
  return false;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Containment without cgroups: the instance's process group, plus the processes that can still be
 * recognised as the instance's once they left it — descendants seen (by parent pid) while the main
 * process lived, and processes whose environment still carries `marker` (`MINIPAAS_INSTANCE=<id>`).
 * A process that left its group, its parent and its environment cannot be found: kill() reports
 * only what it saw and could not kill.
 */
export class ProcessGroupScope implements InstanceCgroup {
  readonly path = null;
  private pid: number | null = null;
  /** Descendants seen while the main process lived: pid → kernel start time. */
  private readonly seen = new Map<number, string>();
  private readonly marker: Buffer;
  private readonly killTimeoutMs: number;

  constructor(marker: string, killTimeoutMs: number) {
    this.marker = Buffer.from(marker);
    this.killTimeoutMs = killTimeoutMs;
  }

  add(pid: number): void {
    this.pid = pid;
  }

  /** Remembers the current descendants of the main process (only findable while it lives). */
  private track(all: ProcStat[]): void {
    if (this.pid === null || !all.some((p) => p.pid === this.pid)) return;
    for (const d of descendantsIn(all, this.pid)) this.seen.set(d.pid, d.start);
  }

  /** Live processes of the instance, the agent itself excluded. */
  members(): number[] {
    const all = snapshot();
    this.track(all);
    const out: number[] = [];
    for (const p of all) {
      if (p.pid === process.pid) continue;
      if (
        (this.pid !== null && (p.pid === this.pid || p.pgid === this.pid)) ||
        this.seen.get(p.pid) === p.start ||
        hasEnvEntry(p.pid, this.marker)
      ) {
        out.push(p.pid);
      }
    }
    return out;
  }

  signal(sig: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === null) return;
    this.track(snapshot());
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  }

  async kill(): Promise<number[]> {
    const deadline = Date.now() + this.killTimeoutMs;
    for (;;) {
      if (this.pid !== null) {
        try {
          process.kill(-this.pid, 'SIGKILL');
        } catch {
          // the group is already empty
        }
      }
      const pids = this.members();
      if (pids.length === 0) return [];
      if (Date.now() >= deadline) return pids;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile, or not ours to kill: if it stays alive it is reported at the deadline
        }
      }
      await sleep(25);
    }
  }
}
