/**
 * Limits password guessing: attempts are counted per email and per client address in the database (so
 * a restart or a second process does not reset them). Each attempt is counted atomically *before* the
 * password is checked, so parallel requests cannot slip past the limit; a correct password takes its
 * attempt back. More than `maxFailuresPerUser` failed attempts within `lockMs` lock that email for
 * `lockMs` (`maxFailuresPerIp` the address). While locked every login is refused, a correct password
 * included, so guessing learns nothing. Unknown emails count like known ones.
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

  /**
   * Counts one attempt for the email and the address; throws MINIPAAS_ERR_RATE_LIMITED when either is
   * locked or this attempt goes over its limit (which locks it).
   */
  async attempt(login: string, ip: string): Promise<void> {
    const until = Math.max(
      await this.count(userKey(login), this.opts.maxFailuresPerUser),
      await this.count(ipKey(ip), this.opts.maxFailuresPerIp),
    );
    if (until <= Date.now()) return;
    const seconds = Math.ceil((until - Date.now()) / 1000);
    const minutes = Math.max(1, Math.ceil(seconds / 60));
    throw new MinipaasError(
      'MINIPAAS_ERR_RATE_LIMITED',
      `too many wrong passwords: login is locked for ${minutes} more minute${minutes === 1 ? '' : 's'}`,
      { details: { retryAfterSeconds: seconds } },
    );
  }

  /**
   * A correct password: clears the email's count and takes this attempt back from the address's (one
   * good account must not reset guessing at others).
   */
  async succeed(login: string, ip: string): Promise<void> {
    await this.db.deleteFrom('login_failures').where('key', '=', userKey(login)).execute();
    await this.db
      .updateTable('login_failures')
      .set({ failures: sql<number>`greatest(failures - 1, 0)` })
      .where('key', '=', ipKey(ip))
      .execute();
  }

  /** Adds one to the key's count (restarting an old window); the time it is locked until, or 0. */
  private async count(key: string, max: number): Promise<number> {
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
      .returning(['failures', 'locked_until'])
      .executeTakeFirstOrThrow();
    const locked = row.locked_until ? new Date(row.locked_until).getTime() : 0;
    if (locked > Date.now()) return locked;
    if (row.failures <= max) return 0;
    const until = new Date(Date.now() + this.opts.lockMs);
    await this.db.updateTable('login_failures').set({ locked_until: until }).where('key', '=', key).execute();
    return until.getTime();
  }
}
