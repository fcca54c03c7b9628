import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  type Dirent,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ProcessGroupScope } from './process-tree.ts';

/** The processes of one instance, killed as one. */
export interface InstanceCgroup {
  /** The instance's cgroup directory, or null when instances are not in cgroups. */
  readonly path: string | null;
  /** Puts the instance's main process in; called before that process runs the app's command. */
  add(pid: number): void;
  /** Sends `sig` to every process of the instance (SIGTERM for a graceful stop). */
  signal(sig: NodeJS.Signals): void;
  /**
   * SIGKILLs every process of the instance until none is left or the kill timeout passes, then
   * removes the cgroup. Resolves with the pids still alive (empty when everything is gone).
   */
  kill(): Promise<number[]>;
}

/** Gives every instance its own cgroup, or without cgroups its process group. One per agent, injected. */
export interface Cgroups {
  /** `v2`, `v1` (the `pids` hierarchy, plus `freezer` when mounted), or `none` (process groups only). */
  readonly version: 'v2' | 'v1' | 'none';
  /** One line for the start log: where instances are contained, or why they are not. */
  readonly description: string;
  /** Creates (or reuses) the cgroup of an instance for its next process. Throws when it cannot. */
  open(app: string, instanceId: string): InstanceCgroup;
  /** Kills every process in every cgroup under the root and removes them; resolves with the pids killed. */
  sweep(): Promise<number[]>;
}

/** Options of {@link createCgroups}. */
export interface CgroupOptions {
  /**
   * This agent's directory inside each cgroup hierarchy, e.g. `minipaas/1a2b3c4d5e6f`; instances go
   * to `<root>/<app>/<instance-id>`. Everything under it belongs to the agent ({@link Cgroups.sweep}
   * kills it): give every agent (and every test) its own. Default: {@link defaultCgroupRoot}.
   */
  root: string;
  /** Where the cgroup hierarchies are mounted (default `/sys/fs/cgroup`). */
  mount?: string;
  /** `auto` (default) prefers v2, then v1; forcing `v2` or `v1` throws when it is not writable. */
  version?: 'auto' | 'v2' | 'v1' | 'none';
  /** How long a kill keeps trying before it reports the survivors (default 2000 ms). */
  killTimeoutMs?: number;
}

const DEFAULT_MOUNT = '/sys/fs/cgroup';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The default cgroup root of an agent: one per MINIPAAS_HOME, so two platforms on a host never meet. */
export function defaultCgroupRoot(home: string): string {
  return `minipaas/${createHash('sha256').update(resolve(home)).digest('hex').slice(0, 12)}`;
}

/** A cgroup hierarchy the agent can use: v2, or v1 `pids` with `freezer` when mounted. */
interface Hierarchy {
  version: 'v2' | 'v1';
  /** Mount points holding a copy of every cgroup: [v2] or [pids, freezer?]. The first is read. */
  mounts: string[];
  /** The v1 freezer mount, if any. */
  freezer: string | null;
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false; // read-only mount or no permission: not usable
  }
}

/** The cgroup hierarchies present and writable under `mount` (v2: the unified mount or hybrid `unified`). */
export function probeCgroups(mount = DEFAULT_MOUNT): {
  v2: string | null;
  v1: string | null;
  freezer: string | null;
} {
  const usable = (dir: string, file: string) => existsSync(join(dir, file)) && writable(dir);
  const v2 = [mount, join(mount, 'unified')].find((d) => usable(d, 'cgroup.controllers')) ?? null;
  const pids = join(mount, 'pids');
  const freezer = join(mount, 'freezer');
  return {
    v2,
    v1: usable(pids, 'cgroup.procs') ? pids : null,
    freezer: usable(freezer, 'freezer.state') || usable(freezer, 'cgroup.procs') ? freezer : null,
  };
}

function hierarchies(mount: string): Hierarchy[] {
  const p = probeCgroups(mount);
  const out: Hierarchy[] = [];
  if (p.v2) out.push({ version: 'v2', mounts: [p.v2], freezer: null });
  if (p.v1) out.push({ version: 'v1', mounts: p.freezer ? [p.v1, p.freezer] : [p.v1], freezer: p.freezer });
  return out;
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** mkdir -p that survives a concurrent rmdir of an (empty) parent. */
function makeDir(dir: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      mkdirSync(dir, { recursive: true });
      return;
    } catch (err) {
      if (errCode(err) !== 'ENOENT' || attempt >= 3) throw err;
    }
  }
}

/** Pids in the cgroup `dir` and every cgroup below it. */
function treePids(dir: string): number[] {
  let procs: string;
  try {
    procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
  } catch (err) {
    if (errCode(err) === 'ENOENT') return [];
    throw err;
  }
  const out = procs.split('\n').filter(Boolean).map(Number);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...treePids(join(dir, e.name)));
  }
  return out;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Writes a control file and polls `done` for up to 100 ms (freezing can take a moment). */
async function setState(file: string, value: string, done: () => boolean): Promise<void> {
  try {
    writeFileSync(file, value);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return; // the cgroup is already gone
    throw err;
  }
  for (let i = 0; i < 20 && !done(); i++) await sleep(5);
}

function signalAll(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // exited meanwhile; a survivor is found by the next read of cgroup.procs
    }
  }
}

/**
 * Kills every process in the cgroup `rel` (and below it) of one hierarchy: v2 writes `cgroup.kill`
 * when the kernel has it, else (v1 and older v2) freezes, SIGKILLs every pid and thaws, so nothing
 * forks during the kill; repeated until the cgroup is empty or `timeoutMs` passes. Resolves with the
 * pids still there at the end.
 */
async function killTree(h: Hierarchy, rel: string, timeoutMs: number): Promise<number[]> {
  const dir = join(h.mounts[0] as string, rel);
  const deadline = Date.now() + timeoutMs;
  const v2Kill = h.version === 'v2' && existsSync(join(dir, 'cgroup.kill'));
  for (;;) {
    const pids = treePids(dir);
    if (pids.length === 0) return [];
    if (Date.now() >= deadline) return pids;
    if (v2Kill) {
      await setState(join(dir, 'cgroup.kill'), '1', () => treePids(dir).length === 0);
      continue;
    }
    const freeze =
      h.version === 'v2'
        ? { file: join(dir, 'cgroup.freeze'), on: '1', off: '0' }
        : h.freezer
          ? { file: join(h.freezer, rel, 'freezer.state'), on: 'FROZEN', off: 'THAWED' }
          : null;
    if (freeze && existsSync(freeze.file)) {
      await setState(freeze.file, freeze.on, () => isFrozen(h, dir, freeze.file));
      signalAll(treePids(dir), 'SIGKILL');
      await setState(freeze.file, freeze.off, () => true);
    } else {
      signalAll(pids, 'SIGKILL');
    }
    for (let i = 0; i < 20 && treePids(dir).length > 0; i++) await sleep(5);
  }
}

function isFrozen(h: Hierarchy, dir: string, file: string): boolean {
  try {
    if (h.version === 'v2') return /^frozen 1$/m.test(readFileSync(join(dir, 'cgroup.events'), 'utf8'));
    return readFileSync(file, 'utf8').trim() === 'FROZEN';
  } catch {
    return true; // gone: nothing left to wait for
  }
}

/** Removes the cgroup `rel` and every cgroup below it, deepest first, in every mount of `h`. */
function removeTree(h: Hierarchy, rel: string): void {
  for (const mount of h.mounts) removeDir(join(mount, rel));
}

function removeDir(dir: string): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (errCode(err) === 'ENOENT') return;
    throw err;
  }
  for (const e of entries) if (e.isDirectory()) removeDir(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch (err) {
    if (errCode(err) !== 'ENOENT') throw err;
  }
}

/** Removes an app's cgroup once its last instance is gone; busy means another instance still uses it. */
function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch (err) {
    const code = errCode(err);
    if (code !== 'ENOENT' && code !== 'EBUSY' && code !== 'ENOTEMPTY') throw err;
  }
}

class CgroupScope implements InstanceCgroup {
  readonly path: string;
  private readonly h: Hierarchy;
  private readonly app: string;
  private readonly rel: string;
  private readonly killTimeoutMs: number;

  constructor(h: Hierarchy, root: string, app: string, id: string, killTimeoutMs: number) {
    this.h = h;
    this.app = join(root, app);
    this.rel = join(root, app, id);
    this.killTimeoutMs = killTimeoutMs;
    this.path = join(h.mounts[0] as string, this.rel);
    for (const mount of h.mounts) makeDir(join(mount, this.rel));
  }

  add(pid: number): void {
    for (const mount of this.h.mounts) writeFileSync(join(mount, this.rel, 'cgroup.procs'), String(pid));
  }

  signal(sig: NodeJS.Signals): void {
    signalAll(treePids(this.path), sig);
  }

  async kill(): Promise<number[]> {
    const left = await killTree(this.h, this.rel, this.killTimeoutMs);
    if (left.length > 0) return left; // the cgroup stays for the next sweep
    removeTree(this.h, this.rel);
    for (const mount of this.h.mounts) removeIfEmpty(join(mount, this.app));
    return [];
  }
}

/** Kills and removes every cgroup under `root` in every hierarchy found; resolves with the pids killed. */
export async function killCgroupTree(
  root: string,
  opts: { mount?: string; killTimeoutMs?: number } = {},
): Promise<number[]> {
  const killed = new Set<number>();
  for (const h of hierarchies(opts.mount ?? DEFAULT_MOUNT)) {
    const dir = join(h.mounts[0] as string, root);
    if (!existsSync(dir)) {
      removeTree(h, root); // a freezer copy may exist alone
      continue;
    }
    for (const pid of treePids(dir)) killed.add(pid);
    const left = await killTree(h, root, opts.killTimeoutMs ?? 2000);
    if (left.length > 0) {
      throw new Error(`cannot kill every process under cgroup ${dir}: still alive: ${left.join(', ')}`);
    }
    removeTree(h, root);
    // Parents shared with other agents (`minipaas`) go too once empty; a busy one is still in use.
    for (let up = dirname(root); up !== '.' && up !== '/'; up = dirname(up)) {
      for (const mount of h.mounts) removeIfEmpty(join(mount, up));
    }
  }
  return [...killed];
}

function checkName(kind: string, name: string): void {
  if (!NAME.test(name) || name.includes('..')) throw new Error(`invalid ${kind} name for a cgroup: ${name}`);
}

/**
 * Detects what can contain instances and returns the agent's {@link Cgroups}: cgroups need root and a
 * writable hierarchy; otherwise every instance gets its process group ({@link ProcessGroupScope}).
 */
export function createCgroups(opts: CgroupOptions): Cgroups {
  const mount = opts.mount ?? DEFAULT_MOUNT;
  const killTimeoutMs = opts.killTimeoutMs ?? 2000;
  const wanted = opts.version ?? 'auto';
  for (const part of opts.root.split('/')) checkName('root', part);
  const none = (why: string): Cgroups => ({
    version: 'none',
    description: `instances are not in cgroups (${why}): only their process groups and the processes still recognisable as theirs are killed`,
    open: (app, id) => {
      checkName('app', app);
      checkName('instance', id);
      return new ProcessGroupScope(`MINIPAAS_INSTANCE=${id}`, killTimeoutMs);
    },
    sweep: async () => [],
  });
  if (wanted === 'none') return none('disabled');
  if (process.getuid?.() !== 0) {
    if (wanted !== 'auto') throw new Error(`cgroup ${wanted} needs the agent to run as root`);
    return none('the agent does not run as root');
  }
  let found: Hierarchy | undefined;
  let why = `no writable cgroup hierarchy under ${mount}`;
  for (const candidate of hierarchies(mount).filter((c) => wanted === 'auto' || c.version === wanted)) {
    try {
      for (const m of candidate.mounts) makeDir(join(m, opts.root));
      found = candidate;
      break;
    } catch (err) {
      why = `cannot create ${opts.root} in cgroup ${candidate.version}: ${(err as Error).message}`;
    }
  }
  if (!found) {
    if (wanted !== 'auto') throw new Error(why);
    return none(why);
  }
  const h = found;
  const where = h.mounts.map((m) => join(m, opts.root)).join(' and ');
  return {
    version: h.version,
    description:
      h.version === 'v2'
        ? `every instance runs in its own cgroup v2 under ${where}${existsSync(join(h.mounts[0] as string, opts.root, 'cgroup.kill')) ? ' (killed with cgroup.kill)' : ' (frozen, then killed)'}`
        : `every instance runs in its own cgroup v1 under ${where}${h.freezer ? ' (frozen, then killed)' : ' (no freezer: killed without freezing)'}`,
    open: (app, id) => {
      checkName('app', app);
      checkName('instance', id);
      return new CgroupScope(h, opts.root, app, id, killTimeoutMs);
    },
    sweep: () => killCgroupTree(opts.root, { mount, killTimeoutMs }),
  };
}
