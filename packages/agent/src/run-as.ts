import { execFile } from 'node:child_process';
import { chmod, lchown, readdir, stat } from 'node:fs/promises';
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
 * Decides which user apps run as: only when the agent runs as root, `configured` or `nobody`;
 * `root` explicitly keeps apps as root. Returns null when no switch happens.
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

async function chownTree(dir: string, who: RunAs): Promise<void> {
  await lchown(dir, who.uid, who.gid);
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, who);
    else await lchown(p, who.uid, who.gid);
  }
}

/**
 * Makes a release directory usable by `who`: inside MINIPAAS_HOME it is chowned (recursively,
 * once) and every directory from the home down to it gets o+x; directories outside the home are
 * only checked. Throws a readable error when some ancestor cannot be traversed.
 */
export async function prepareReleaseDir(home: string, dir: string, who: RunAs): Promise<void> {
  const target = resolve(dir);
  const homeAbs = resolve(home);
  const inHome = isInside(homeAbs, target);
  if (inHome) {
    const st = await stat(target);
    if (st.uid !== who.uid || st.gid !== who.gid) await chownTree(target, who);
  }
  // Walk from the directory up to the root.
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
