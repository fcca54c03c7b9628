/**
 * Browser sessions, stored server side: the cookie carries 32 random bytes, the database keeps their
 * sha256, the user, a CSRF synchronizer token and the expiry (absolute `sessionTtlMs`, idle
 * `sessionIdleMs`). Logging out deletes the row, so a stolen cookie stops working at once; so do
 * disabling the user and changing the user's password.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { LoginTables } from './login-tables.ts';

export interface SessionStoreOptions {
  /** Absolute lifetime of a session. */
  ttlMs: number;
  /** A session unused this long ends. */
  idleMs: number;
}

/** A valid session as a request sees it. */
export interface ActiveSession {
  sessionId: string;
  userId: string;
  csrfToken: string;
  method: string;
  expiresAt: Date;
}

/** What login hands the browser: the cookie value and the CSRF token, each shown once. */
export interface NewSession extends ActiveSession {
  token: string;
}

/** Last-seen times are written at most this often per session (not on every request). */
const TOUCH_EVERY_MS = 60_000;

/** What a session remembers of the user's password hash (a change ends the session). */
function passwordMarker(passwordHash: string | null): string {
  return createHash('sha256')
    .update(passwordHash ?? '')
    .digest('hex');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Cookie values are base64url of 32 bytes: anything else is not looked up. */
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export class SessionStore {
  private readonly db: Kysely<Database & LoginTables>;
  private readonly opts: SessionStoreOptions;

  constructor(db: Kysely<Database>, opts: SessionStoreOptions) {
    this.db = db.withTables<LoginTables>();
    this.opts = opts;
  }

  async create(input: {
    userId: string;
    method: string;
    ip?: string | null;
    userAgent?: string | null;
  }): Promise<NewSession> {
    const token = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    const sessionId = `ses_${randomUUID()}`;
    const user = await this.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', input.userId)
      .executeTakeFirstOrThrow();
    const expiresAt = new Date(Date.now() + this.opts.ttlMs);
    // Ended sessions go when new ones start (no background job needed).
    await this.prune();
    await this.db
      .insertInto('sessions')
      .values({
        id: sessionId,
        token_hash: hashToken(token),
        user_id: input.userId,
        csrf_token: csrfToken,
        method: input.method,
        password_marker: passwordMarker(user.password_hash),
        ip: input.ip?.slice(0, 100) ?? null,
        user_agent: input.userAgent?.slice(0, 300) ?? null,
        expires_at: expiresAt,
      })
      .execute();
    return { sessionId, userId: input.userId, csrfToken, method: input.method, expiresAt, token };
  }

  /** The session a cookie value belongs to, if it is still valid (and marks it used). */
  async lookup(token: string): Promise<ActiveSession | null> {
    if (!TOKEN_RE.test(token)) return null;
    const row = await this.db
      .selectFrom('sessions')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .select([
        'sessions.id',
        'sessions.user_id',
        'sessions.csrf_token',
        'sessions.method',
        'sessions.expires_at',
        'sessions.last_seen_at',
        'sessions.password_marker',
        'users.password_hash',
        'users.disabled',
      ])
      .where('sessions.token_hash', '=', hashToken(token))
      .executeTakeFirst();
    if (!row) return null;
    const now = Date.now();
    const lastSeen = new Date(row.last_seen_at).getTime();
    // Expired, idle, the user disabled, or the password changed since login: the session is over.
    if (
      new Date(row.expires_at).getTime() <= now ||
      lastSeen + this.opts.idleMs <= now ||
      row.disabled ||
      row.password_marker !== passwordMarker(row.password_hash)
    ) {
      await this.db.deleteFrom('sessions').where('id', '=', row.id).execute();
      return null;
    }
    if (now - lastSeen > TOUCH_EVERY_MS)
      await this.db
        .updateTable('sessions')
        .set({ last_seen_at: new Date(now) })
        .where('id', '=', row.id)
        .execute();
    return {
      sessionId: row.id,
      userId: row.user_id,
      csrfToken: row.csrf_token,
      method: row.method,
      expiresAt: new Date(row.expires_at),
    };
  }

  async delete(sessionId: string): Promise<void> {
    await this.db.deleteFrom('sessions').where('id', '=', sessionId).execute();
  }

  /** Ends every session of a user (password change, user disabled). */
  async deleteForUser(userId: string): Promise<number> {
    const r = await this.db.deleteFrom('sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async prune(): Promise<void> {
    await this.db
      .deleteFrom('sessions')
      .where((eb) =>
        eb.or([
          eb('expires_at', '<=', new Date()),
          eb('last_seen_at', '<=', new Date(Date.now() - this.opts.idleMs)),
        ]),
      )
      .execute();
  }
}
