/**
 * Limits password guessing: wrong passwords are counted per user name and per client address in the
 * database (so a restart or a second process does not reset them). `maxFailuresPerUser` failures within
 * `lockMs` lock that user name for `lockMs`; `maxFailuresPerIp` lock that address. While locked, every
 * login is refused, a correct password included, so guessing learns nothing. Unknown user names count
 * like known ones.
 */
import { MinipaasError } from '@minipaas/core';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { LoginTables } from './login-tables.ts';

export interface LoginLimiterOptions {
  maxFailuresPerUser: number;
  maxFailuresPerIp: number;
  /** How long failures count, and how long a lock lasts. */
  lockMs: number;
}

export function userKey(login: string): string {
  return `user:${login.toLowerCase().slice(0, 200)}`;
}

export function ipKey(ip: string): string {
  return `ip:${ip.slice(0, 100)}`;
}

export class LoginLimiter {
  private readonly db: Kysely<Database & LoginTables>;
  private readonly opts: LoginLimiterOptions;

  constructor(db: Kysely<Database>, opts: LoginLimiterOptions) {
    this.db = db.withTables<LoginTables>();
    this.opts = opts;
  }

  /** Throws MINIPAAS_ERR_RATE_LIMITED while the user name or the address is locked. */
  async check(login: string, ip: string): Promise<void> {
    const rows = await this.db
      .selectFrom('login_failures')
      .select(['key', 'locked_until'])
      .where('key', 'in', [userKey(login), ipKey(ip)])
      .where('locked_until', '>', new Date())
      .execute();
    if (rows.length === 0) return;
    const until = Math.max(...rows.map((r) => new Date(r.locked_until as Date).getTime()));
    const minutes = Math.max(1, Math.ceil((until - Date.now()) / 60_000));
    throw new MinipaasError(
      'MINIPAAS_ERR_RATE_LIMITED',
      `too many wrong passwords: login is locked for ${minutes} more minute${minutes === 1 ? '' : 's'}`,
      { details: { retryAfterSeconds: Math.ceil((until - Date.now()) / 1000) } },
    );
  }

  /** Counts a wrong password for the user name and the address; locks either at its limit. */
  async fail(login: string, ip: string): Promise<void> {
    await this.count(userKey(login), this.opts.maxFailuresPerUser);
    await this.count(ipKey(ip), this.opts.maxFailuresPerIp);
  }

  /** A correct password clears the user name's count (not the address's: one good account must not
   * reset guessing at others). */
  async succeed(login: string): Promise<void> {
    await this.db.deleteFrom('login_failures').where('key', '=', userKey(login)).execute();
  }

  private async count(key: string, max: number): Promise<void> {
    const windowStart = new Date(Date.now() - this.opts.lockMs);
    const row = await this.db
      .insertInto('login_failures')
      .values({ key, failures: 1, first_failure_at: new Date() })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          failures: sql<number>`CASE WHEN login_failures.first_failure_at > ${windowStart} THEN login_failures.failures + 1 ELSE 1 END`,
          first_failure_at: sql<Date>`CASE WHEN login_failures.first_failure_at > ${windowStart} THEN login_failures.first_failure_at ELSE now() END`,
        }),
      )
      .returning('failures')
      .executeTakeFirstOrThrow();
    if (row.failures >= max)
      await this.db
        .updateTable('login_failures')
        .set({ locked_until: new Date(Date.now() + this.opts.lockMs) })
        .where('key', '=', key)
        .execute();
  }
}
