/**
 * Memory and CPU limits of process instances, and their usage (issue 9). A root agent on cgroup v1 puts
 * every instance's process in its own `memory` and `cpu` cgroups (`<mount>/<controller>/<root>/<app>/<id>`):
 * `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes` when swap accounting exists, so the limit is
 * not dodged by swapping) and a CFS quota (`cpu.cfs_quota_us` = millicores × period / 1000). The kernel's
 * OOM killer ends a process past its memory limit; `memory.oom_control`'s `oom_kill` counter tells the agent
 * that this is what happened. Usage comes from `cpuacct.usage` and `memory.usage_in_bytes`.
 *
 * On a cgroup v2 host (the unified hierarchy mounted at `<mount>`, as on current distributions) the same
 * instance cgroup `<mount>/<root>/<app>/<id>` gets `memory.max` (and `memory.swap.max` 0) and `cpu.max`
 * (quota and period), after `+memory +cpu` are enabled in `cgroup.subtree_control` from the mount down to
 * the app's cgroup; the OOM count is `memory.events`'s `oom_kill`, usage `cpu.stat`'s `usage_usec` and
 * `memory.current`. (These test machines are cgroup v1: the v2 path is tested on a directory laid out like
 * the unified hierarchy, not against the kernel.)
 *
 * Anything else (not root, no writable hierarchies with the memory and cpu controllers) reports the limits
 * as `unsupported` with the reason on every instance; they are never silently ignored. Usage is then read
 * from `/proc/<pid>` of the instance's main process.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { LimitsEnforcement } from '@minipaas/core';

/** Limits requested for an instance. */
export interface Limits {
  memoryMb?: number;
  cpuMillicores?: number;
}

/** A cumulative usage reading. */
export interface UsageReading {
  /** CPU time used so far, nanoseconds. */
  cpuNs: number;
  /** Memory in use now, bytes. */
  memoryBytes: number;
}

/** The limits of one process of an instance. */
export interface LimitHandle {
  readonly enforcement: LimitsEnforcement;
  /** Puts `pid` under the limits (before it runs the app's command). */
  add(pid: number): void;
  /** Usage of the instance's processes (cgroups) or of `pid` (no cgroups); null when unreadable. */
  read(pid: number | null): UsageReading | null;
  /** OOM kills in this process's cgroup since it was opened (0 without cgroups). */
  oomKills(): number;
  /** Removes the cgroups (once the processes are gone); never throws. */
  remove(): void;
}

/** Applies limits to instances; one per agent, injected. */
export interface ResourceLimiter {
  readonly mode: 'cgroup-v1' | 'cgroup-v2' | 'unsupported';
  /** One line for the start log. */
  readonly description: string;
  open(app: string, id: string, limits: Limits): LimitHandle;
  /** Removes the (empty) cgroups left under the root by a previous agent. */
  sweep(): void;
}

/** Options of {@link createResourceLimiter}. */
export interface ResourceLimiterOptions {
  /** This agent's directory in each hierarchy (same as the pids cgroups: `defaultCgroupRoot(home)`). */
  root: string;
  /** Where the v1 hierarchies (or the v2 unified hierarchy) are mounted (default `/sys/fs/cgroup`). */
  mount?: string;
  /** `auto` (default): v1 when usable; `none`: report unsupported. */
  mode?: 'auto' | 'none';
}

const CFS_PERIOD_US = 100_000;
const PAGE = 4096;
const TICK_NS = 10_000_000; // USER_HZ 100

function readNumber(file: string): number | null {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null; // the cgroup is gone (process exited): no reading
  }
}

function oomKillCount(memDir: string): number {
  try {
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(memDir, 'memory.oom_control'), 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // gone
  }
}

/** Memory of a cgroup without its inactive page cache (what would be reclaimed before an OOM kill). */
function cgroupMemory(memDir: string): number | null {
  const usage = readNumber(join(memDir, 'memory.usage_in_bytes'));
  if (usage === null) return null;
  try {
    const m = /^total_inactive_file (\d+)$/m.exec(readFileSync(join(memDir, 'memory.stat'), 'utf8'));
    return Math.max(0, usage - (m ? Number(m[1]) : 0));
  } catch {
    return usage;
  }
}

/** CPU time and RSS of one process from /proc (no cgroups). */
export function procUsage(pid: number): UsageReading | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime + stime
    const rssPages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return { cpuNs: ticks * TICK_NS, memoryBytes: rssPages * PAGE };
  } catch {
    return null; // exited
  }
}

function removeDir(dir: string): void {
  for (let i = 0; i < 5; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') return; // not empty: an instance of the app still uses it (parent dirs)
    }
  }
}

function unsupported(reason: string): ResourceLimiter {
  return {
    mode: 'unsupported',
    description: `resource limits are not enforced: ${reason}`,
    open: (_app, _id, limits) => ({
      enforcement: { mode: 'unsupported', ...limits, reason },
      add: () => {},
      read: (pid) => (pid === null ? null : procUsage(pid)),
      oomKills: () => 0,
      remove: () => {},
    }),
    sweep: () => {},
  };
}

/** Detects what can limit instances: cgroup v1 `memory` + `cpu` as root, else `unsupported`. */
export function createResourceLimiter(opts: ResourceLimiterOptions): ResourceLimiter {
  const mount = opts.mount ?? '/sys/fs/cgroup';
  if (opts.mode === 'none') return unsupported('disabled');
  if (process.getuid?.() !== 0) return unsupported('the agent does not run as root');
  const memory = join(mount, 'memory');
  const cpu = join(mount, 'cpu');
  const cpuacct = join(mount, 'cpuacct');
  if (!existsSync(join(memory, 'memory.limit_in_bytes')) || !existsSync(join(cpu, 'cpu.cfs_quota_us'))) {
    if (existsSync(join(mount, 'cgroup.controllers'))) return v2Limiter(mount, opts.root);
    return unsupported(`no cgroup v1 memory and cpu hierarchies or cgroup v2 hierarchy under ${mount}`);
  }
  const acct = existsSync(join(cpu, 'cpuacct.usage')) ? cpu : cpuacct;
  try {
    for (const m of [memory, cpu, acct]) mkdirSync(join(m, opts.root), { recursive: true });
  } catch (err) {
    return unsupported(`cannot create ${opts.root} in the cgroup v1 hierarchies: ${(err as Error).message}`);
  }
  const mounts = [...new Set([memory, cpu, acct])];
  return {
    mode: 'cgroup-v1',
    description: `instance memory and CPU limits in cgroup v1 under ${join(memory, opts.root)} and ${join(cpu, opts.root)}`,
    open(app, id, limits) {
      const rel = join(opts.root, app, id);
      for (const m of mounts) mkdirSync(join(m, rel), { recursive: true });
      const memDir = join(memory, rel);
      if (limits.memoryMb !== undefined) {
        const bytes = String(limits.memoryMb * 1024 * 1024);
        writeFileSync(join(memDir, 'memory.limit_in_bytes'), bytes);
        const memsw = join(memDir, 'memory.memsw.limit_in_bytes');
        if (existsSync(memsw)) writeFileSync(memsw, bytes);
      }
      if (limits.cpuMillicores !== undefined) {
        writeFileSync(join(cpu, rel, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
        writeFileSync(
          join(cpu, rel, 'cpu.cfs_quota_us'),
          String(Math.max(1000, Math.round((limits.cpuMillicores * CFS_PERIOD_US) / 1000))),
        );
      }
      const baseline = oomKillCount(memDir);
      return {
        enforcement: { mode: 'cgroup-v1', ...limits },
        add(pid) {
          for (const m of mounts) writeFileSync(join(m, rel, 'cgroup.procs'), String(pid));
        },
        read() {
          const cpuNs = readNumber(join(acct, rel, 'cpuacct.usage'));
          const memoryBytes = cgroupMemory(memDir);
          return cpuNs === null || memoryBytes === null ? null : { cpuNs, memoryBytes };
        },
        oomKills: () => oomKillCount(memDir) - baseline,
        remove() {
          for (const m of mounts) {
            removeDir(join(m, rel));
            removeDir(join(m, opts.root, app));
          }
        },
      };
    },
    sweep() {
      for (const m of mounts) {
        sweepTree(join(m, opts.root));
        // The root and its parents (shared by agents, e.g. `minipaas`) go too once empty.
        for (let d = opts.root; d !== '.' && d !== '/' && d !== ''; d = dirname(d)) removeDir(join(m, d));
      }
    },
  };
}

/** Enables `controllers` for the children of the cgroup `dir` (a no-op for those already enabled). */
function enableControllers(dir: string, controllers: string[]): void {
  const on = new Set(readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').split(/\s+/).filter(Boolean));
  for (const c of controllers) if (!on.has(c)) writeFileSync(join(dir, 'cgroup.subtree_control'), `+${c}`);
}

/** `key value` lines (`memory.events`, `cpu.stat`, `memory.stat`): the value of `key`, or null. */
function statValue(file: string, key: string): number | null {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null; // gone
  }
}

/** Limits in the cgroup v2 unified hierarchy mounted at `mount` (see the module comment). */
function v2Limiter(mount: string, root: string): ResourceLimiter {
  const CONTROLLERS = ['memory', 'cpu'];
  let available: string[];
  try {
    available = readFileSync(join(mount, 'cgroup.controllers'), 'utf8').split(/\s+/);
  } catch (err) {
    return unsupported(`cannot read ${join(mount, 'cgroup.controllers')}: ${(err as Error).message}`);
  }
  const missing = CONTROLLERS.filter((c) => !available.includes(c));
  if (missing.length > 0)
    return unsupported(`the cgroup v2 hierarchy at ${mount} has no ${missing.join(' and ')} controller`);
  try {
    // From the mount down to this agent's root, every level hands memory and cpu to its children.
    let dir = mount;
    enableControllers(dir, CONTROLLERS);
    for (const part of root.split('/')) {
      dir = join(dir, part);
      mkdirSync(dir, { recursive: true });
      enableControllers(dir, CONTROLLERS);
    }
  } catch (err) {
    return unsupported(
      `cannot enable the memory and cpu controllers for ${join(mount, root)}: ${(err as Error).message}`,
    );
  }
  return {
    mode: 'cgroup-v2',
    description: `instance memory and CPU limits in cgroup v2 under ${join(mount, root)}`,
    open(app, id, limits) {
      const appDir = join(mount, root, app);
      const dir = join(appDir, id);
      mkdirSync(dir, { recursive: true });
      enableControllers(appDir, CONTROLLERS);
      if (limits.memoryMb !== undefined) {
        writeFileSync(join(dir, 'memory.max'), String(limits.memoryMb * 1024 * 1024));
        const swap = join(dir, 'memory.swap.max');
        if (existsSync(swap)) writeFileSync(swap, '0');
      }
      if (limits.cpuMillicores !== undefined) {
        const quota = Math.max(1000, Math.round((limits.cpuMillicores * CFS_PERIOD_US) / 1000));
        writeFileSync(join(dir, 'cpu.max'), `${quota} ${CFS_PERIOD_US}`);
      }
      const oom = () => statValue(join(dir, 'memory.events'), 'oom_kill') ?? 0;
      const baseline = oom();
      return {
        enforcement: { mode: 'cgroup-v2', ...limits },
        add(pid) {
          writeFileSync(join(dir, 'cgroup.procs'), String(pid));
        },
        read() {
          const usec = statValue(join(dir, 'cpu.stat'), 'usage_usec');
          const current = readNumber(join(dir, 'memory.current'));
          if (usec === null || current === null) return null;
          const inactive = statValue(join(dir, 'memory.stat'), 'inactive_file') ?? 0;
          return { cpuNs: usec * 1000, memoryBytes: Math.max(0, current - inactive) };
        },
        oomKills: () => oom() - baseline,
        remove() {
          removeDir(dir);
          removeDir(appDir);
        },
      };
    },
    sweep() {
      sweepTree(join(mount, root));
    },
  };
}

/** Removes the empty cgroups below `dir` (deepest first); busy ones stay. */
function sweepTree(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return; // no such hierarchy directory: nothing left
  }
  for (const n of names) {
    sweepTree(join(dir, n));
    removeDir(join(dir, n));
  }
}
