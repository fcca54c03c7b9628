import { execFile } from 'node:child_process';
import { chmod, lchown, mkdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** The unprivileged identity apps run as. */
export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

/**
 * The fallback user of apps whose spec carries no identity of its own (see `AppSpec.user`): only when
 * the agent runs as root, `configured` or `nobody`; `root` explicitly keeps apps as root (and disables
 * the per-app users too). Returns null when no switch happens.
 */
export async function resolveRunAs(configured: string | undefined): Promise<RunAs | null> {
  if (process.getuid?.() !== 0) return null;
  const user = configured ?? 'nobody';
  if (user === 'root') return null;
  try {
    const [u, g] = await Promise.all([execFileP('id', ['-u', user]), execFileP('id', ['-g', user])]);
    const uid = Number(u.stdout.trim());
    const gid = Number(g.stdout.trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('bad id output');
    return { user, uid, gid };
  } catch {
    throw new Error(`apps.user: the OS user "${user}" does not exist (create it, or set apps.user)`);
  }
}

function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep));
}

function canTraverse(st: { uid: number; gid: number; mode: number }, who: RunAs): boolean {
  if (st.uid === who.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === who.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

/**
 * Recursive chown with the system tool: coreutils walks the tree with fd-relative calls and never follows
 * a symlink (`-P -h`), so a process of the app racing the walk cannot redirect it outside the tree.
 */
async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await execFileP('chown', ['-R', '-P', '-h', `${uid}:${gid}`, '--', dir]);
}

/** Where an app may write: its data dir (HOME, volume) and its tmp dir (TMPDIR), under MINIPAAS_HOME/apps. */
export function appDirs(home: string, app: string): { root: string; data: string; tmp: string } {
  const root = join(home, 'apps', app);
  return { root, data: join(root, 'data'), tmp: join(root, 'tmp') };
}

/** The app's private dependency cache, used by its builds only. */
export function appCacheDir(home: string, app: string): string {
  return join(home, 'cache', app);
}

/**
 * Makes every directory from `dir` up to the root traversable by `who`: inside MINIPAAS_HOME by adding
 * o+x (no listing), outside only by checking. Throws a readable error when some ancestor cannot be traversed.
 */
export async function ensureReachable(home: string, dir: string, who: RunAs): Promise<void> {
  const target = resolve(dir);
  const homeAbs = resolve(home);
  const inHome = isInside(homeAbs, target);
  const chain: string[] = [];
  for (let d = dirname(target); ; d = dirname(d)) {
    chain.push(d);
    if (d === dirname(d)) break;
  }
  for (const d of chain) {
    const st = await stat(d);
    if (canTraverse(st, who)) continue;
    if (inHome && isInside(homeAbs, d)) {
      await chmod(d, (st.mode & 0o7777) | 0o001);
      continue;
    }
    throw new Error(
      `apps run as "${who.user}" but cannot reach ${target}: directory ${d} is not traversable by that user (chmod o+x ${d}, or set apps.user)`,
    );
  }
}

/**
 * Makes a tree root:gid and read-only for the group: directories 0750, files 0640 (0750 when executable),
 * setuid/setgid/sticky bits cleared, symlinks neither followed nor changed (coreutils, see chownTree).
 */
export async function lockTree(dir: string, gid: number): Promise<void> {
  await chownTree(dir, 0, gid);
  await execFileP('chmod', ['-R', 'a-st,u=rwX,g=rX,o=', '--', dir]);
}

/**
 * Locks a release directory for `who`: inside MINIPAAS_HOME the tree becomes root:gid with directories
 * 0750 and files 0640 (0750 when executable), setuid/setgid/sticky bits cleared, so the app can read and run
 * its release but not change it, and other apps cannot even list it; its parent (`releases/<app>`) gets
 * the same 0750 root:gid. Directories outside the home are only checked for reachability. Cheap when the
 * release is already locked.
 */
export async function prepareReleaseDir(home: string, dir: string, who: RunAs): Promise<void> {
  const target = resolve(dir);
  if (isInside(resolve(home), target) && target !== resolve(home)) {
    const st = await stat(target);
    if (st.uid !== 0 || st.gid !== who.gid || (st.mode & 0o7777) !== 0o750) await lockTree(target, who.gid);
    const parent = dirname(target);
    if (isInside(resolve(home), parent) && parent !== resolve(home)) {
      await lchown(parent, 0, who.gid);
      await chmod(parent, 0o750);
    }
  }
  await ensureReachable(home, target, who);
}

/**
 * A directory owned by `who` (uid:gid, `mode`) for the app alone: created when missing, the whole tree
 * handed over when its top belongs to someone else (a reused uid never inherits files, see app deletion).
 */
export async function ownDir(dir: string, who: RunAs, mode = 0o700): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  const st = await stat(dir);
  if (st.uid !== who.uid || st.gid !== who.gid) await chownTree(dir, who.uid, who.gid);
  if ((st.mode & 0o7777) !== mode) await chmod(dir, mode);
}

/**
 * Creates the app's writable places, `apps/<app>/{data,tmp}`: owned by `who` with mode 0700 under a
 * root:gid 0750 `apps/<app>`, or plainly created when no user switch happens (`who` null).
 */
export async function prepareAppDirs(home: string, app: string, who: RunAs | null): Promise<void> {
  const dirs = appDirs(home, app);
  if (!who) {
    await mkdir(dirs.data, { recursive: true, mode: 0o700 });
    await mkdir(dirs.tmp, { recursive: true, mode: 0o700 });
    return;
  }
  await mkdir(dirs.root, { recursive: true, mode: 0o750 });
  await lchown(dirs.root, 0, who.gid);
  await chmod(dirs.root, 0o750);
  await ownDir(dirs.data, who);
  await ownDir(dirs.tmp, who);
  await ensureReachable(home, dirs.data, who);
}
