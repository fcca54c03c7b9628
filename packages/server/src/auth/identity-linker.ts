/**
 * Maps an external identity (GitHub account, OIDC subject) to a MiniPaaS user: an identity already
 * linked keeps its user; otherwise a valid invite the login was started with links it to the invited
 * user; otherwise a user whose email equals one of the identity's verified emails. Nothing else
 * creates a link, so an unverified email never reaches an account.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { MinipaasError } from '@minipaas/core';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { ExternalIdentity } from './external-login.ts';
import type { LoginTables } from './login-tables.ts';

/** The users an identity can be matched against (the users table of access control). */
export interface UserLookup {
  /** The active user with one of these emails (lowercase), if exactly one matches. */
  findByEmail(emails: readonly string[]): Promise<string | null>;
  /** True when the user exists and may log in. */
  isActive(userId: string): Promise<boolean>;
}

export interface Invite {
  id: string;
  /** Shown once; only its sha256 is stored. */
  code: string;
  userId: string;
  expiresAt: Date;
}

/** Invite codes are base64url of 24 bytes. */
export const INVITE_CODE_RE = /^[A-Za-z0-9_-]{32}$/;

function hash(code: string): string {
  return createHash('sha256').update(code).digest('hex');
}

export class IdentityLinker {
  private readonly db: Kysely<Database & LoginTables>;
  private readonly users: UserLookup;

  constructor(db: Kysely<Database>, users: UserLookup) {
    this.db = db.withTables<LoginTables>();
    this.users = users;
  }

  /** An invite that links the next external login (any provider) to `userId`. */
  async createInvite(userId: string, createdBy: string | null, ttlMs: number): Promise<Invite> {
    if (!(await this.users.isActive(userId)))
      throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `user ${userId.slice(0, 100)} not found`);
    const code = randomBytes(24).toString('base64url');
    const invite: Invite = {
      id: `inv_${randomUUID()}`,
      code,
      userId,
      expiresAt: new Date(Date.now() + ttlMs),
    };
    await this.db
      .insertInto('login_invites')
      .values({
        id: invite.id,
        code_hash: hash(code),
        user_id: userId,
        created_by: createdBy,
        expires_at: invite.expiresAt,
      })
      .execute();
    return invite;
  }

  /**
   * The user this identity logs in as, or null when none matches. Links the identity on first use.
   * @param inviteCode the invite the login was started with, if any (used once)
   */
  async resolve(
    identity: ExternalIdentity,
    inviteCode?: string,
  ): Promise<{ userId: string; via: string } | null> {
    const email = identity.verifiedEmails[0] ?? null;
    const linked = await this.db
      .selectFrom('user_identities')
      .select('user_id')
      .where('provider', '=', identity.provider)
      .where('subject', '=', identity.subject)
      .executeTakeFirst();
    if (linked) {
      if (!(await this.users.isActive(linked.user_id))) return null;
      await this.db
        .updateTable('user_identities')
        .set({ last_login_at: new Date(), email, name: identity.name })
        .where('provider', '=', identity.provider)
        .where('subject', '=', identity.subject)
        .execute();
      return { userId: linked.user_id, via: 'identity' };
    }
    if (inviteCode && INVITE_CODE_RE.test(inviteCode)) {
      // Claimed atomically: two logins racing with one code cannot both use it.
      const invite = await this.db
        .updateTable('login_invites')
        .set({ used_at: new Date(), used_by_provider: identity.provider })
        .where('code_hash', '=', hash(inviteCode))
        .where('used_at', 'is', null)
        .where('expires_at', '>', new Date())
        .returning('user_id')
        .executeTakeFirst();
      if (invite && (await this.users.isActive(invite.user_id))) {
        await this.link(identity, invite.user_id, email);
        return { userId: invite.user_id, via: 'invite' };
      }
    }
    if (identity.verifiedEmails.length) {
      const userId = await this.users.findByEmail(identity.verifiedEmails);
      if (userId && (await this.users.isActive(userId))) {
        await this.link(identity, userId, email);
        return { userId, via: 'email' };
      }
    }
    return null;
  }

  private async link(identity: ExternalIdentity, userId: string, email: string | null): Promise<void> {
    await this.db
      .insertInto('user_identities')
      .values({
        provider: identity.provider,
        subject: identity.subject,
        user_id: userId,
        email,
        name: identity.name,
      })
      .onConflict((oc) => oc.columns(['provider', 'subject']).doNothing())
      .execute();
  }
}
