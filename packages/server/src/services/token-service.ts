import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Role } from '@minipaas/core';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

export type { Role };

export interface TokenIdentity {
  id: string;
  name: string;
  role: Role;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** API tokens: stored as SHA-256 hashes; the plain token is shown once (written to a 0600 file for the admin). */
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

  /** Returns the identity of a valid token, or null. */
  async verify(token: string): Promise<TokenIdentity | null> {
    if (!/^mp_[A-Za-z0-9_-]{20,100}$/.test(token)) return null;
    const row = await this.#db
      .selectFrom('api_tokens')
      .select(['id', 'name', 'role'])
      .where('token_hash', '=', hashToken(token))
      .executeTakeFirst();
    return row ? { id: row.id, name: row.name, role: row.role as Role } : null;
  }
}
