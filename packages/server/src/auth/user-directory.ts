/**
 * The users of access control (migration 20261130000001_access_control.sql) as login sees them:
 * password check by email, lookup by verified email, whether a user may log in, and what the signed-in
 * page shows (the user, their teams, the apps of their teams' projects).
 */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { SignedInView } from './landing-page.ts';
import type { UserDirectory } from './login.ts';

/** Checks a password against a stored hash (`scrypt$N$r$p$salt$hash`). */
export type PasswordCheck = (password: string, stored: string) => Promise<boolean>;

export interface UserDirectoryOptions {
  db: Kysely<Database>;
  checkPassword: PasswordCheck;
  /** A stored hash of a random password, checked when the user is unknown so timing does not tell. */
  dummyHash: string;
  /** The public URL of an app. */
  appUrl(name: string): string;
}

export class DbUserDirectory implements UserDirectory {
  private readonly opts: UserDirectoryOptions;

  constructor(opts: UserDirectoryOptions) {
    this.opts = opts;
  }

  async verify(login: string, password: string): Promise<string | null> {
    const user = await this.opts.db
      .selectFrom('users')
      .select(['id', 'password_hash', 'disabled'])
      .where((eb) => eb(eb.fn('lower', ['email']), '=', login.toLowerCase()))
      .executeTakeFirst();
    if (!user?.password_hash) {
      await this.opts.checkPassword(password, this.opts.dummyHash);
      return null;
    }
    const ok = await this.opts.checkPassword(password, user.password_hash);
    return ok && !user.disabled ? user.id : null;
  }

  async findByEmail(emails: readonly string[]): Promise<string | null> {
    if (emails.length === 0) return null;
    const rows = await this.opts.db
      .selectFrom('users')
      .select('id')
      .where((eb) =>
        eb(
          eb.fn('lower', ['email']),
          'in',
          emails.map((e) => e.toLowerCase()),
        ),
      )
      .where('disabled', '=', false)
      .limit(2)
      .execute();
    return rows.length === 1 ? (rows[0] as { id: string }).id : null;
  }

  async isActive(userId: string): Promise<boolean> {
    const row = await this.opts.db
      .selectFrom('users')
      .select('disabled')
      .where('id', '=', userId)
      .executeTakeFirst();
    return row !== undefined && !row.disabled;
  }

  async view(userId: string): Promise<Omit<SignedInView, 'csrfToken'> | null> {
    const db = this.opts.db;
    const user = await db
      .selectFrom('users')
      .select(['name', 'email', 'disabled'])
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!user || user.disabled) return null;
    const teams = await db
      .selectFrom('team_members')
      .innerJoin('teams', 'teams.id', 'team_members.team_id')
      .select(['teams.id', 'teams.name', 'team_members.role'])
      .where('team_members.user_id', '=', userId)
      .orderBy('teams.name')
      .execute();
    const apps = teams.length
      ? await db
          .selectFrom('apps')
          .innerJoin('projects', 'projects.id', 'apps.project_id')
          .select(['apps.name', 'apps.status', 'projects.name as project'])
          .where(
            'projects.team_id',
            'in',
            teams.map((t) => t.id),
          )
          .orderBy('projects.name')
          .orderBy('apps.name')
          .limit(500)
          .execute()
      : [];
    return {
      user: { name: user.name || user.email, email: user.email },
      teams: teams.map((t) => ({ name: t.name, role: t.role })),
      apps: apps.map((a) => ({
        name: a.name,
        project: a.project,
        status: a.status,
        url: this.opts.appUrl(a.name),
      })),
    };
  }
}

/** A fresh random value to hash as the dummy password of unknown users. */
export function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}
