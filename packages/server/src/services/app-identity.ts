/**
 * Every app's own unprivileged OS identity: a uid and a gid (the same number) from the configured range
 * `apps.uidMin`..`apps.uidMax`, recorded in `app_identities`, created as OS user and group `mp<uid>` with the
 * system tools when the platform runs as root, and freed (user removed, writable places deleted) with the
 * app. An id is handed out again only when no process runs as it, so a reused id never inherits anything.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { type AppUser, type MinipaasConfig, MinipaasError } from '@minipaas/core';
import { appCacheDir, appDirs } from '@minipaas/runtime-process';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../store/schema.ts';

const execFileP = promisify(execFile);

/** Options of {@link AppIdentityService}. */
export interface AppIdentityOptions {
  db: Kysely<Database>;
  config: MinipaasConfig;
  log: Logger;
  /**
   * Give apps their own OS users: create them with groupadd/useradd and put them in the specs and builds.
   * Default: the platform runs as root and `apps.user` is unset (`root` or a user name turns it off).
   */
  osUsers?: boolean;
}

/** The app fields the identity service needs. */
export interface AppRef {
  id: string;
  name: string;
}

/** OS user and group name of an app id: derived from the number, so it is stable across reuse. */
export function appUserName(uid: number): string {
  return `mp${uid}`;
}

/** PostgreSQL's unique_violation. */
const UNIQUE_VIOLATION = '23505';

/** The line of `getent <db> <key>`, or null when there is no such entry (exit code 2). */
async function getent(db: 'passwd' | 'group', key: string): Promise<string[] | null> {
  try {
    const { stdout } = await execFileP('getent', [db, key]);
    return stdout.trim().split(':');
  } catch (err) {
    if ((err as { code?: unknown }).code === 2) return null;
    throw err;
  }
}

function nologinShell(): string {
  for (const s of ['/usr/sbin/nologin', '/sbin/nologin']) if (existsSync(s)) return s;
  return '/bin/false';
}

/** Real and effective uids of every process on the host, each with one of its pids. */
async function processUids(): Promise<Map<number, number>> {
  const uids = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let status: string;
    try {
      status = await readFile(`/proc/${entry}/status`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const ids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    if (!ids) continue;
    uids.set(Number(ids[1]), Number(entry));
    uids.set(Number(ids[2]), Number(entry));
  }
  return uids;
}

/** Allocates, creates and frees the per-app OS identities. */
export class AppIdentityService {
  readonly #o: AppIdentityOptions;
  readonly #osUsers: boolean;
  /** uids whose OS user and group this process has checked or created. */
  readonly #ensured = new Set<number>();
  /** Allocations of this process, one at a time (other processes sharing the database: unique index + retry). */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: AppIdentityOptions) {
    this.#o = opts;
    this.#osUsers = opts.osUsers ?? (process.getuid?.() === 0 && opts.config.apps.user === undefined);
  }

  /** True when apps get OS users of their own (root platform, `apps.user` unset). */
  get enabled(): boolean {
    return this.#osUsers;
  }

  /** The app's identity, allocated now if it has none yet (apps created before identities existed). */
  allocate(app: AppRef): Promise<AppUser> {
    const run = this.#queue.then(() => this.#allocate(app));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The user the app runs and builds as, with its OS user and group in place, or undefined when apps do
   * not get users of their own (the agent's fallback `apps.user`, or no switch, applies).
   */
  async userFor(app: AppRef): Promise<AppUser | undefined> {
    if (!this.#osUsers) return undefined;
    const user = await this.allocate(app);
    await this.#ensureOsUser(user, app.name);
    return user;
  }

  /**
   * Frees the app's identity after its instances were stopped: removes the OS user and group, its data, tmp
   * and cache dirs, and the record. Processes still running as the uid (children that escaped their
   * instance) are not killed here, since the range may be shared with another install (their cgroup is
   * the place for that); they are logged, and the id is not handed out again while they run.
   */
  async free(app: AppRef): Promise<void> {
    const home = this.#o.config.home;
    const row = await this.#o.db
      .selectFrom('app_identities')
      .select(['uid', 'gid'])
      .where('app_id', '=', app.id)
      .executeTakeFirst();
    if (row && this.#osUsers) {
      const uid = Number(row.uid);
      const pid = (await processUids()).get(uid);
      if (pid !== undefined)
        this.#o.log.warn(
          { app: app.name, uid, pid },
          'a process of a deleted app still runs; its uid stays unused',
        );
      await this.#removeOsUser(uid);
    }
    await rm(appDirs(home, app.name).root, { recursive: true, force: true });
    await rm(appCacheDir(home, app.name), { recursive: true, force: true });
    await this.#o.db.deleteFrom('app_identities').where('app_id', '=', app.id).execute();
  }

  async #allocate(app: AppRef): Promise<AppUser> {
    const { uidMin, uidMax } = this.#o.config.apps;
    for (let attempt = 0; ; attempt++) {
      const existing = await this.#o.db
        .selectFrom('app_identities')
        .select(['uid', 'gid'])
        .where('app_id', '=', app.id)
        .executeTakeFirst();
      if (existing) return this.#user(Number(existing.uid), Number(existing.gid));
      const taken = new Set(
        (await this.#o.db.selectFrom('app_identities').select('uid').execute()).map((r) => Number(r.uid)),
      );
      const running = this.#osUsers ? await processUids() : new Map<number, number>();
      let uid: number | null = null;
      for (let c = uidMin; c <= uidMax; c++) {
        if (taken.has(c) || running.has(c)) continue;
        if (this.#osUsers && !(await this.#freeOnHost(c))) continue;
        uid = c;
        break;
      }
      if (uid === null) {
        throw new MinipaasError(
          'MINIPAAS_ERR_LIMIT_EXCEEDED',
          `no free uid for app "${app.name}": all ${uidMax - uidMin + 1} ids of apps.uidMin..apps.uidMax (${uidMin}..${uidMax}) are taken (by apps, by other users of this host, or by processes still running as them); widen the range`,
          { details: { uidMin, uidMax } },
        );
      }
      try {
        await this.#o.db.insertInto('app_identities').values({ app_id: app.id, uid, gid: uid }).execute();
        this.#o.log.info({ app: app.name, uid }, 'allocated app uid');
        return this.#user(uid, uid);
      } catch (err) {
        // Another control plane on the same database took it: look again.
        if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION || attempt >= 5) throw err;
      }
    }
  }

  #user(uid: number, gid: number): AppUser {
    return { name: appUserName(uid), uid, gid };
  }

  /** An id is usable when no OS user or group has it, or only ours (`mp<uid>`, left by an earlier install). */
  async #freeOnHost(id: number): Promise<boolean> {
    const [u, g] = await Promise.all([getent('passwd', String(id)), getent('group', String(id))]);
    return (!u || u[0] === appUserName(id)) && (!g || g[0] === appUserName(id));
  }

  async #ensureOsUser(user: AppUser, app: string): Promise<void> {
    if (this.#ensured.has(user.uid)) return;
    try {
      await this.#ensureEntry('group', user.name, user.gid, () =>
        execFileP('groupadd', ['--gid', String(user.gid), user.name]),
      );
      await this.#ensureEntry('passwd', user.name, user.uid, () =>
        execFileP('useradd', [
          '--uid',
          String(user.uid),
          '--gid',
          String(user.gid),
          '--no-create-home',
          '--no-user-group',
          '--no-log-init',
          '--home-dir',
          '/nonexistent',
          '--shell',
          nologinShell(),
          '--comment',
          `MiniPaaS app ${app}`,
          user.name,
        ]),
      );
    } catch (err) {
      throw new MinipaasError(
        'MINIPAAS_ERR_INTERNAL',
        `cannot create the OS user ${user.name} (uid ${user.uid}) of app "${app}": ${(err as Error).message.trim()}`,
        { cause: err },
      );
    }
    this.#ensured.add(user.uid);
  }

  /**
   * Makes sure the passwd/group entry `name` with `id` exists: fine when it already does (also when a
   * concurrent create won the race), an error when the name or the id belongs to someone else.
   */
  async #ensureEntry(
    db: 'passwd' | 'group',
    name: string,
    id: number,
    create: () => Promise<unknown>,
  ): Promise<void> {
    const matches = async () => {
      const [byId, byName] = await Promise.all([getent(db, String(id)), getent(db, name)]);
      if (byId && byId[0] === name) return true;
      // Same name and id, seen by name only (another install sharing the range may be recreating it).
      if (!byId && byName && byName[2] === String(id)) return true;
      if (byId) throw new Error(`${db} id ${id} already belongs to "${byId[0]}"`);
      if (byName) throw new Error(`${db} name ${name} already exists with id ${byName[2]}`);
      return false;
    };
    if (await matches()) return;
    try {
      await create();
    } catch (err) {
      if (await matches()) return;
      throw err;
    }
  }

  async #removeOsUser(uid: number): Promise<void> {
    const name = appUserName(uid);
    for (const [tool, db] of [
      ['userdel', 'passwd'],
      ['groupdel', 'group'],
    ] as const) {
      const entry = await getent(db, String(uid));
      if (!entry || entry[0] !== name) continue;
      try {
        await execFileP(tool, [name]);
      } catch (err) {
        // The id stays recorded as free; the entry is ours (mp<uid>) and is reused as is.
        this.#o.log.warn({ uid, err: (err as Error).message.trim() }, `${tool} failed`);
      }
    }
    this.#ensured.delete(uid);
  }
}
