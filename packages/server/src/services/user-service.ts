/**
 * Users (docs/security.md): people who log in with a password, an external identity or API tokens.
 * Passwords are hashed with node:crypto scrypt (auth/password-hash.ts); a user can be disabled, which
 * ends every session and token of theirs at the next request.
 */
import { randomUUID } from 'node:crypto';
import { MinipaasError, ROLES, type Role } from '@minipaas/core';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { hashPassword } from '../auth/password-hash.ts';
import type { Database } from '../store/schema.ts';

export const createUserSchema = z
  .object({
    email: z.email().max(320),
    name: z.string().trim().max(100).optional(),
    /** Omitted: no password login (tokens, GitHub or OIDC only). */
    password: z.string().min(12, 'password must have at least 12 characters').max(1024).optional(),
    /** Adds the user to this team (id or slug) with `role`. */
    team: z.string().max(100).optional(),
    role: z.enum(ROLES).optional(),
  })
  .strict();
export type CreateUserInput = z.infer<typeof createUserSchema>;

export const patchUserSchema = z
  .object({
    name: z.string().trim().max(100).optional(),
    disabled: z.boolean().optional(),
    password: z.string().min(12, 'password must have at least 12 characters').max(1024).optional(),
  })
  .strict();
export type PatchUserInput = z.infer<typeof patchUserSchema>;

export interface UserView {
  id: string;
  email: string;
  name: string;
  disabled: boolean;
  hasPassword: boolean;
  createdAt: string;
  teams: Array<{ id: string; slug: string; role: Role }>;
}

export class UserService {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Creates a user (and their membership of `teamId` with `role` when given). */
  async create(input: CreateUserInput, teamId?: string): Promise<UserView> {
    const email = input.email.toLowerCase();
    const clash = await this.#db
      .selectFrom('users')
      .select('id')
      .where((eb) => eb(eb.fn('lower', ['email']), '=', email))
      .executeTakeFirst();
    if (clash)
      throw new MinipaasError('MINIPAAS_ERR_USER_EXISTS', `a user with email "${email}" already exists`);
    const passwordHash = input.password ? await hashPassword(input.password) : null;
    const id = randomUUID();
    await this.#db.transaction().execute(async (trx) => {
      await trx
        .insertInto('users')
        .values({ id, email, name: input.name ?? '', password_hash: passwordHash })
        .execute();
      if (teamId)
        await trx
          .insertInto('team_members')
          .values({ team_id: teamId, user_id: id, role: input.role ?? 'viewer' })
          .execute();
    });
    return this.get(id);
  }

  /** A user by id or email. */
  async get(ref: string): Promise<UserView> {
    const row = await this.#db
      .selectFrom('users')
      .selectAll()
      .where((eb) =>
        ref.includes('@') ? eb(eb.fn('lower', ['email']), '=', ref.toLowerCase()) : eb('id', '=', ref),
      )
      .executeTakeFirst();
    if (!row)
      throw new MinipaasError(
        'MINIPAAS_ERR_USER_NOT_FOUND',
        `user "${ref.slice(0, 100).replace(/[^\x20-\x7e]/g, '?')}" not found`,
      );
    const teams = await this.#db
      .selectFrom('team_members')
      .innerJoin('teams', 'teams.id', 'team_members.team_id')
      .select(['teams.id', 'teams.slug', 'team_members.role'])
      .where('team_members.user_id', '=', row.id)
      .orderBy('teams.slug')
      .execute();
    return {
      id: row.id,
      email: row.email,
      name: row.name,
      disabled: row.disabled,
      hasPassword: row.password_hash !== null,
      createdAt: new Date(row.created_at).toISOString(),
      teams: teams.map((t) => ({ id: t.id, slug: t.slug, role: t.role as Role })),
    };
  }

  async list(): Promise<UserView[]> {
    const rows = await this.#db.selectFrom('users').select('id').orderBy('email').execute();
    return Promise.all(rows.map((r) => this.get(r.id)));
  }

  async patch(ref: string, input: PatchUserInput): Promise<UserView> {
    const user = await this.get(ref);
    const set: { name?: string; disabled?: boolean; password_hash?: string } = {};
    if (input.name !== undefined) set.name = input.name;
    if (input.disabled !== undefined) set.disabled = input.disabled;
    if (input.password !== undefined) set.password_hash = await hashPassword(input.password);
    if (Object.keys(set).length)
      await this.#db.updateTable('users').set(set).where('id', '=', user.id).execute();
    return this.get(user.id);
  }
}
