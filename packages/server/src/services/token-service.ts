import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MinipaasError, ROLES, type Role, roleAtLeast } from '@minipaas/core';
import type { Kysely, Selectable } from 'kysely';
import { type AccessControl, type Principal, roleIn } from '../http/access.ts';
import type { ApiTokensTable, Database } from '../store/schema.ts';

export type { Role };

/** A valid API token and whom it acts for. */
export interface TokenIdentity {
  id: string;
  name: string;
  role: Role;
  /** The user the token acts for; null: a platform-wide token (its role in every team). */
  userId: string | null;
  /** Only this project; null: every project the user may reach. */
  projectId: string | null;
}

/** An API token as the API lists it (never the secret). */
export interface TokenView {
  id: string;
  name: string;
  role: Role;
  userId: string | null;
  projectId: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
}

/** What `create` takes (validated by the route). */
export interface CreateTokenInput {
  name: string;
  /** Default: the creator's own highest role. */
  role?: Role | undefined;
  /** A project id or slug the token is limited to. */
  project?: string | undefined;
  expiresAt?: Date | undefined;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

function tokenView(r: Selectable<ApiTokensTable>): TokenView {
  return {
    id: r.id,
    name: r.name,
    role: r.role as Role,
    userId: r.user_id,
    projectId: r.project_id,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: iso(r.last_used_at),
    expiresAt: iso(r.expires_at),
    revokedAt: iso(r.revoked_at),
  };
}

/** The reason a presented token is refused (said in the 401). */
export type TokenRefusal = 'invalid' | 'expired' | 'revoked' | 'disabled';

/**
 * API tokens: stored as SHA-256 hashes; the plain token is shown once (written to a 0600 file for the
 * admin). A token acts for its user, never above its own role, and only inside its project when scoped.
 */
export class TokenService {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /**
   * Creates the first admin token when none exists and writes it (mode 0600) to `file`.
   * Returns the plain token when one was created, else null.
   */
  async ensureAdminToken(file: string): Promise<string | null> {
    const existing = await this.#db.selectFrom('api_tokens').select('id').limit(1).executeTakeFirst();
    if (existing) return null;
    const token = `mp_${randomBytes(32).toString('base64url')}`;
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    await this.#db.transaction().execute(async (trx) => {
      // The first owner: owns the default team; the admin token is theirs.
      await trx
        .insertInto('users')
        .values({ id: 'owner', email: 'owner@minipaas.local', name: 'owner' })
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
      await trx
        .insertInto('team_members')
        .values({ team_id: 'default', user_id: 'owner', role: 'owner' })
        .onConflict((oc) => oc.columns(['team_id', 'user_id']).doNothing())
        .execute();
      await trx
        .insertInto('api_tokens')
        .values({
          id: randomUUID(),
          name: 'admin',
          role: 'owner',
          token_hash: hashToken(token),
          user_id: 'owner',
        })
        .execute();
    });
    return token;
  }

  /** The identity of a usable token, or why it is refused. Records the last-used time. */
  async check(token: string): Promise<TokenIdentity | { refused: TokenRefusal }> {
    if (!/^mp_[A-Za-z0-9_-]{20,100}$/.test(token)) return { refused: 'invalid' };
    const row = await this.#db
      .selectFrom('api_tokens')
      .leftJoin('users', 'users.id', 'api_tokens.user_id')
      .select([
        'api_tokens.id',
        'api_tokens.name',
        'api_tokens.role',
        'api_tokens.user_id',
        'api_tokens.project_id',
        'api_tokens.expires_at',
        'api_tokens.revoked_at',
        'users.disabled',
      ])
      .where('api_tokens.token_hash', '=', hashToken(token))
      .executeTakeFirst();
    if (!row) return { refused: 'invalid' };
    if (row.revoked_at) return { refused: 'revoked' };
    if (row.expires_at && new Date(row.expires_at).getTime() <= Date.now()) return { refused: 'expired' };
    if (row.disabled) return { refused: 'disabled' };
    // At most one write a minute per token.
    await this.#db
      .updateTable('api_tokens')
      .set({ last_used_at: new Date() })
      .where('id', '=', row.id)
      .where((eb) =>
        eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', new Date(Date.now() - 60_000))]),
      )
      .execute();
    return {
      id: row.id,
      name: row.name,
      role: row.role as Role,
      userId: row.user_id,
      projectId: row.project_id,
    };
  }

  /** Returns the identity of a usable token, or null (invalid, expired, revoked, disabled user). */
  async verify(token: string): Promise<TokenIdentity | null> {
    const r = await this.check(token);
    return 'refused' in r ? null : r;
  }

  /**
   * Creates a token for the caller: its role at most the caller's (in the scoped project's team when
   * scoped), a token of a project-scoped caller stays in that project. Returns the plain token once.
   */
  async create(
    caller: Principal,
    input: CreateTokenInput,
    access: AccessControl,
  ): Promise<{ token: string; view: TokenView }> {
    let projectId: string | null = caller.projectId;
    let ceiling: Role | null;
    if (input.project !== undefined) {
      const target = await access.project(input.project);
      if (caller.projectId && target.projectId !== caller.projectId) throw target.notFound();
      ceiling = roleIn(caller, target.teamId);
      if (!ceiling) throw target.notFound();
      projectId = target.projectId;
    } else if (caller.everywhere) ceiling = caller.cap;
    else
      ceiling = [...caller.teams.values()].reduce<Role | null>(
        (a, r) => (a === null || roleAtLeast(r, a) ? r : a),
        null,
      );
    if (!ceiling) ceiling = 'viewer'; // a user in no team: the token can reach nothing anyway
    const role = input.role ?? ceiling;
    if (!ROLES.includes(role)) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `unknown role "${role}"`);
    if (!roleAtLeast(ceiling, role))
      throw new MinipaasError(
        'MINIPAAS_ERR_FORBIDDEN',
        `a token cannot have a higher role than its creator: you have ${ceiling}, asked for ${role}`,
      );
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now())
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'expiry must be in the future');
    const token = `mp_${randomBytes(32).toString('base64url')}`;
    const row = await this.#db
      .insertInto('api_tokens')
      .values({
        id: randomUUID(),
        name: input.name,
        role,
        token_hash: hashToken(token),
        user_id: caller.userId,
        project_id: projectId,
        created_by: caller.userId ?? caller.tokenId,
        expires_at: input.expiresAt ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { token, view: tokenView(row) };
  }

  /** The caller's own tokens (a platform-wide token: the platform-wide tokens); `all`: everyone's. */
  async list(caller: Principal, opts: { all?: boolean } = {}): Promise<TokenView[]> {
    let q = this.#db.selectFrom('api_tokens').selectAll().orderBy('created_at').orderBy('id');
    if (!opts.all) q = q.where('user_id', caller.userId ? '=' : 'is', caller.userId);
    return (await q.execute()).map(tokenView);
  }

  /** Revokes one of the caller's tokens (`any`: anyone's). A token the caller cannot see is a 404. */
  async revoke(caller: Principal, id: string, opts: { any?: boolean } = {}): Promise<TokenView> {
    const notFound = new MinipaasError(
      'MINIPAAS_ERR_TOKEN_NOT_FOUND',
      `token "${id.slice(0, 60)}" not found`,
    );
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw notFound;
    let q = this.#db
      .updateTable('api_tokens')
      .set({ revoked_at: new Date() })
      .where('id', '=', id.toLowerCase())
      .where('revoked_at', 'is', null);
    if (!opts.any) q = q.where('user_id', caller.userId ? '=' : 'is', caller.userId);
    const row = await q.returningAll().executeTakeFirst();
    if (row) return tokenView(row);
    // Already revoked (answer it as it is), or not the caller's.
    let get = this.#db.selectFrom('api_tokens').selectAll().where('id', '=', id.toLowerCase());
    if (!opts.any) get = get.where('user_id', caller.userId ? '=' : 'is', caller.userId);
    const existing = await get.executeTakeFirst();
    if (!existing) throw notFound;
    return tokenView(existing);
  }
}
