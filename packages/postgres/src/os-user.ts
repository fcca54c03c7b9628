/**
 * The OS identity the server runs as. PostgreSQL refuses to run as root: when the platform is root, a
 * dedicated unprivileged system user (config `postgres.user`) owns the cluster and runs the server;
 * otherwise it runs as the current user.
 */
import { existsSync } from 'node:fs';
import { run } from './run.ts';

export interface ServerIdentity {
  /** User name; undefined when the server runs as the current (non-root) user. */
  user: string | undefined;
  uid: number | undefined;
  gid: number | undefined;
}

async function lookup(user: string): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const [u, g] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
    return { uid: Number(u.trim()), gid: Number(g.trim()) };
  } catch {
    return undefined;
  }
}

/**
 * The identity for the server: the current user when not root; when root, `user`, created as a system
 * user without login and home when missing (reported through `log`).
 */
export async function serverIdentity(user: string, log: (line: string) => void): Promise<ServerIdentity> {
  if (process.getuid?.() !== 0) return { user: undefined, uid: undefined, gid: undefined };
  if (user === 'root') throw new Error('postgres.user cannot be root: PostgreSQL refuses to run as root');
  let ids = await lookup(user);
  if (!ids) {
    const shell = ['/usr/sbin/nologin', '/sbin/nologin'].find((s) => existsSync(s)) ?? '/bin/false';
    log(`creating the system user "${user}" that runs PostgreSQL`);
    await run('useradd', [
      '--system',
      '--user-group',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      shell,
      '--comment',
      'MiniPaaS PostgreSQL server',
      user,
    ]);
    ids = await lookup(user);
    if (!ids) throw new Error(`useradd did not create the user "${user}"`);
  }
  if (ids.uid === 0) throw new Error(`postgres.user "${user}" has uid 0: PostgreSQL refuses to run as root`);
  return { user, ...ids };
}
