/**
 * Stopping what a dead or half-dead platform left behind: the app processes of an agent that died
 * (from the agent's persisted state: pids with kernel start times, so a reused pid is never signalled),
 * the agent's cgroups when it used them, a leftover agent or minipaasd (by their pid files, checked to
 * be ours), stale pid files and the agent socket. Used by `minipaas down` and by the supervisor when it
 * gives up on the agent.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HomePaths } from '@minipaas/core';
import { agentHealth, agentRequest, isAlive, procStat, readPid, removeFile, waitFor } from './platform.ts';

/** The program names MiniPaaS processes run (matched against /proc/PID/cmdline). */
export const BIN = {
  supervisor: 'minipaas',
  agent: 'minipaas-agent',
  server: 'minipaasd',
  buildWorker: 'minipaas-build-worker',
} as const;

/** The parts of the embedded PostgreSQL server that teardown needs (see `@minipaas/postgres`). */
export interface LeftoverPostgres {
  postmasterPid(): number | undefined;
  /** Fast shutdown (`pg_ctl stop -m fast`); false when it was not running. */
  stop(): Promise<boolean>;
}

/** Options of the teardown functions. */
export interface TeardownOptions {
  paths: HomePaths;
  /** The embedded PostgreSQL server of this home; unset when the platform uses DATABASE_URL. */
  postgres?: LeftoverPostgres | undefined;
  /** How long app processes get between SIGTERM and SIGKILL. */
  graceMs: number;
  /** Progress lines ("Stopped 3 app processes ..."). */
  log: (line: string) => void;
}

/** What a teardown step did. */
export interface TeardownResult {
  /** Pids (or process groups) that were stopped. */
  stopped: number[];
  /** What could not be stopped, one readable line each. */
  failed: string[];
}

interface ProcEntry {
  pid: number;
  pgid: number;
  start: bigint;
}

/** Every live (non-zombie) process from /proc, with its process group and start time. */
function processTable(): ProcEntry[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return []; // no /proc (macOS): only the recorded group leaders can be checked
  }
  const out: ProcEntry[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const st = procStat(pid);
    if (!st || st.state === 'Z' || !/^\d+$/.test(st.start)) continue;
    out.push({ pid, pgid: st.pgid, start: BigInt(st.start) });
  }
  return out;
}

/**
 * True when `pid` (read from a pid file of this home) is really a live MiniPaaS process of this home:
 * not a zombie, its command line names `bin`, and its MINIPAAS_HOME (when its environment is readable
 * and sets one) is `home`. Guards against signalling an unrelated process that reused the pid.
 */
export function isOurProcess(pid: number, bin: string, home: string): boolean {
  if (!isAlive(pid, bin)) return false;
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return true; // no /proc or not readable: the pid file in this home and the command line decide
  }
  const entry = environ.split('\0').find((e) => e.startsWith('MINIPAAS_HOME='));
  return entry === undefined || resolve(entry.slice('MINIPAAS_HOME='.length)) === resolve(home);
}

/** The MINIPAAS_HOME in a process's environment, resolved; undefined when unset or unreadable. */
function homeOf(pid: number): string | undefined {
  try {
    const entry = readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .find((e) => e.startsWith('MINIPAAS_HOME='));
    return entry === undefined ? undefined : resolve(entry.slice('MINIPAAS_HOME='.length));
  } catch {
    return undefined;
  }
}

interface PersistedProcesses {
  processes?: Array<{ pid?: unknown; start?: unknown }>;
}

/**
 * Process groups of app instances from the agent's state file that still exist and are provably the
 * agent's: the leader is alive with the recorded start time, or the leader is gone (its pid number then
 * stays reserved for the group) and members started no earlier than it remain.
 */
export function appProcessGroups(stateFile: string): number[] {
  let state: PersistedProcesses;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as PersistedProcesses;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read the agent state ${stateFile}: ${(err as Error).message}`);
  }
  const table = processTable();
  const groups: number[] = [];
  for (const p of state.processes ?? []) {
    if (typeof p.pid !== 'number' || !Number.isInteger(p.pid) || p.pid <= 1) continue;
    if (typeof p.start !== 'string' || !/^\d+$/.test(p.start)) continue;
    const start = BigInt(p.start);
    const leader = procStat(p.pid);
    if (leader && leader.start !== p.start) continue; // the pid now belongs to another process
    const members = table.filter((e) => e.pgid === p.pid && e.start >= start);
    if (members.length > 0 || (leader && leader.state !== 'Z')) groups.push(p.pid);
  }
  return groups;
}

function groupAlive(pgid: number): boolean {
  return processTable().some((e) => e.pgid === pgid);
}

function signalGroup(pgid: number, sig: NodeJS.Signals, failed: string[]): void {
  try {
    process.kill(-pgid, sig);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return;
    failed.push(
      code === 'EPERM'
        ? `app process group ${pgid}: permission denied (run minipaas down as the user that started MiniPaaS)`
        : `app process group ${pgid}: ${(err as Error).message}`,
    );
  }
}

/** A function that kills a cgroup tree, as exported by the agent's cgroup module when it has one. */
type KillCgroupTree = (root: string) => Promise<number[]>;

/** The agent's cgroup killer for this home, or undefined when the agent has no cgroup support. */
async function cgroupKiller(home: string): Promise<(() => Promise<number[]>) | undefined> {
  let file: string;
  try {
    file = join(dirname(fileURLToPath(import.meta.resolve('@minipaas/agent'))), 'cgroup.ts');
  } catch {
    return undefined; // the agent package is not installed next to the CLI
  }
  let mod: { killCgroupTree?: unknown; defaultCgroupRoot?: unknown };
  try {
    mod = (await import(file)) as typeof mod;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
  const { killCgroupTree, defaultCgroupRoot } = mod;
  if (typeof killCgroupTree !== 'function' || typeof defaultCgroupRoot !== 'function') return undefined;
  const root = (defaultCgroupRoot as (home: string) => string)(home);
  return () => (killCgroupTree as KillCgroupTree)(root);
}

/**
 * Stops every app process a dead agent left running: SIGTERM to each process group recorded in the
 * agent's state, SIGKILL to what is left after the grace, then the agent's cgroup tree when the agent
 * uses cgroups (catches processes that left their group with setsid). Call only when no agent runs.
 */
export async function stopOrphanedApps(opts: TeardownOptions): Promise<TeardownResult> {
  const failed: string[] = [];
  let groups: number[];
  try {
    groups = appProcessGroups(opts.paths.agentState);
  } catch (err) {
    failed.push((err as Error).message);
    groups = [];
  }
  if (groups.length > 0) {
    opts.log(`Stopping ${groups.length} app process group(s) left by the node agent: ${groups.join(', ')}`);
    for (const g of groups) signalGroup(g, 'SIGTERM', failed);
    const done = await waitFor(() => (groups.some(groupAlive) ? undefined : true), opts.graceMs);
    if (!done) {
      const left = groups.filter(groupAlive);
      opts.log(`Killing ${left.length} app process group(s) that ignored SIGTERM: ${left.join(', ')}`);
      for (const g of left) signalGroup(g, 'SIGKILL', failed);
      await waitFor(() => (left.some(groupAlive) ? undefined : true), 5000);
    }
    const survivors = groups.filter(groupAlive);
    for (const g of survivors) failed.push(`app process group ${g} is still alive`);
  }
  const stopped = groups.filter((g) => !groupAlive(g));
  try {
    const kill = await cgroupKiller(opts.paths.home);
    const killed = kill ? await kill() : [];
    if (killed.length > 0) {
      opts.log(`Killed ${killed.length} app process(es) left in the agent's cgroups: ${killed.join(', ')}`);
      stopped.push(...killed);
    }
  } catch (err) {
    failed.push(`the agent's cgroups: ${(err as Error).message}`);
  }
  return { stopped, failed };
}

/** SIGTERM, then SIGKILL after `graceMs`; true when the process is gone. */
export async function stopProcess(pid: number, graceMs: number): Promise<boolean> {
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  send('SIGTERM');
  if (await waitFor(() => (isAlive(pid) ? undefined : true), graceMs)) return true;
  send('SIGKILL');
  return Boolean(await waitFor(() => (isAlive(pid) ? undefined : true), 5000));
}

/**
 * Stops the servers of dedicated Postgres add-ons (`<home>/addons/<db>/postgres/data`, see the server's
 * dedicated-postgres.ts): SIGINT (PostgreSQL's fast shutdown) to each live postmaster named in a
 * `postmaster.pid`, then waits for it to exit (SIGQUIT, immediate shutdown, after `graceMs`).
 */
export async function stopDedicatedPostgres(
  home: string,
  graceMs: number,
  log: (line: string) => void,
): Promise<TeardownResult> {
  const stopped: number[] = [];
  const failed: string[] = [];
  const root = join(home, 'addons');
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { stopped, failed };
    return { stopped, failed: [`${root}: ${(err as Error).message}`] };
  }
  for (const name of names) {
    const pid = readPid(join(root, name, 'postgres', 'data', 'postmaster.pid'));
    if (pid === undefined || !isAlive(pid, 'postgres')) continue;
    log(`Stopping the dedicated PostgreSQL server of add-on ${name} (pid ${pid}) ...`);
    const send = (sig: NodeJS.Signals): boolean => {
      try {
        process.kill(pid, sig);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
        failed.push(`dedicated PostgreSQL ${name} (pid ${pid}): ${(err as Error).message}`);
        return false;
      }
    };
    if (!send('SIGINT')) continue;
    let gone = Boolean(await waitFor(() => (isAlive(pid) ? undefined : true), graceMs));
    if (!gone && send('SIGQUIT'))
      gone = Boolean(await waitFor(() => (isAlive(pid) ? undefined : true), 10_000));
    if (gone) stopped.push(pid);
    else failed.push(`dedicated PostgreSQL ${name} (pid ${pid}) did not stop`);
  }
  return { stopped, failed };
}

/**
 * Stops every build worker of this home that is still running: one that outlived its minipaasd finishes
 * its builds alone, and the pid file then names its successor, so they are found in the process table
 * (command line and MINIPAAS_HOME checked). SIGTERM puts their builds back in the queue; SIGKILL after 20 s.
 */
export async function stopBuildWorkers(
  paths: HomePaths,
  log: (line: string) => void,
): Promise<TeardownResult> {
  const pids = new Set(
    processTable()
      .map((p) => p.pid)
      .filter((pid) => isAlive(pid, BIN.buildWorker) && homeOf(pid) === resolve(paths.home)),
  );
  const recorded = readPid(paths.buildWorkerPid); // no /proc (macOS): the pid file at least
  if (recorded !== undefined && isOurProcess(recorded, BIN.buildWorker, paths.home)) pids.add(recorded);
  const res: TeardownResult = { stopped: [], failed: [] };
  for (const pid of pids) {
    log(`Stopping the build worker (pid ${pid}) ...`);
    if (await stopProcess(pid, 20_000)) res.stopped.push(pid);
    else res.failed.push(`the build worker (pid ${pid}) did not stop`);
  }
  return res;
}

/**
 * Everything `minipaas down` does once the supervisor is gone (or never ran): stops a leftover
 * minipaasd, asks a live agent to stop its apps (or kills a hung one), stops the app processes a dead
 * agent left, stops a leftover embedded PostgreSQL server, and removes stale pid files and the socket. Reports each step through `opts.log`.
 */
export async function stopLeftovers(opts: TeardownOptions): Promise<TeardownResult> {
  const { paths, log } = opts;
  const stopped: number[] = [];
  const failed: string[] = [];
  const fromPidFile = (file: string, bin: string): number | undefined => {
    const pid = readPid(file);
    return pid !== undefined && isOurProcess(pid, bin, paths.home) ? pid : undefined;
  };

  const serverPid = fromPidFile(paths.serverPid, BIN.server);
  if (serverPid !== undefined) {
    log(`Stopping minipaasd (pid ${serverPid}) ...`);
    if (await stopProcess(serverPid, 20_000)) stopped.push(serverPid);
    else failed.push(`minipaasd (pid ${serverPid}) did not stop`);
  }

  const worker = await stopBuildWorkers(paths, log);
  stopped.push(...worker.stopped);
  failed.push(...worker.failed);

  const health = await agentHealth(paths.agentSocket);
  const agentPid = health?.pid ?? fromPidFile(paths.agentPid, BIN.agent);
  if (agentPid !== undefined) {
    const graceMs = opts.graceMs + 15_000;
    log(`Stopping the apps and the node agent (pid ${agentPid}) ...`);
    let asked = false;
    if (health) {
      try {
        await agentRequest(paths.agentSocket, 'POST', '/v1/shutdown', 5000);
        asked = true;
      } catch (err) {
        log(`the node agent did not take the shutdown request (${(err as Error).message}); sending SIGTERM`);
      }
    }
    const gone = asked
      ? Boolean(await waitFor(() => (isAlive(agentPid) ? undefined : true), graceMs)) ||
        (await stopProcess(agentPid, 5000))
      : await stopProcess(agentPid, graceMs);
    if (gone) stopped.push(agentPid);
    else failed.push(`the node agent (pid ${agentPid}) did not stop`);
  }

  // Whatever the agent did not stop (it was dead, hung or killed): from its persisted state.
  if (!failed.some((f) => f.startsWith('the node agent'))) {
    const apps = await stopOrphanedApps(opts);
    stopped.push(...apps.stopped);
    failed.push(...apps.failed);
  }

  const dedicated = await stopDedicatedPostgres(paths.home, 60_000, log);
  stopped.push(...dedicated.stopped);
  failed.push(...dedicated.failed);

  // Last, as the supervisor does: apps with add-on databases use it until they stop.
  const pgPid = opts.postgres?.postmasterPid();
  if (opts.postgres && pgPid !== undefined) {
    log(`Stopping PostgreSQL (pid ${pgPid}) ...`);
    try {
      await opts.postgres.stop();
      stopped.push(pgPid);
    } catch (err) {
      failed.push(`PostgreSQL (pid ${pgPid}): ${(err as Error).message}`);
    }
  }

  const stale: string[] = [];
  for (const [file, bin] of [
    [paths.supervisorPid, BIN.supervisor],
    [paths.serverPid, BIN.server],
    [paths.agentPid, BIN.agent],
    [paths.buildWorkerPid, BIN.buildWorker],
  ] as const) {
    if (!existsSync(file)) continue;
    const pid = readPid(file);
    if (pid === undefined || !isOurProcess(pid, bin, paths.home)) {
      removeFile(file);
      stale.push(file);
    }
  }
  // The socket of an agent that is gone (a live but hung agent keeps its pid file and its socket).
  if (
    existsSync(paths.agentSocket) &&
    !existsSync(paths.agentPid) &&
    !(await agentHealth(paths.agentSocket))
  ) {
    removeFile(paths.agentSocket);
    stale.push(paths.agentSocket);
  }
  if (stale.length > 0) log(`Removed stale files: ${stale.join(', ')}`);
  return { stopped, failed };
}
