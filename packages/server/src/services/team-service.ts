/**
 * Teams and their members (docs/security.md). A team owns projects; a member's role in the team is
 * what they may do to its projects and apps. A team always keeps at least one owner; only an owner
 * can make someone an owner or change an owner's role (transferring ownership).
 */
import { randomUUID } from 'node:crypto';
import { MinipaasError, ROLES, type Role, roleAtLeast, slugify } from '@minipaas/core';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../store/schema.ts';

export const createTeamSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    slug: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/, 'slug must be lowercase letters, digits and dashes')
      .optional(),
  })
  .strict();

export const memberSchema = z
  .object({
    /** The user's email or id. */
    user: z.string().min(1).max(320),
    role: z.enum(ROLES),
  })
  .strict();

export const roleSchema = z.object({ role: z.enum(ROLES) }).strict();

export interface TeamView {
  id: string;
  name: string;
  slug: string;
  createdAt: string;
  /** The caller's role in the team (absent for a platform-wide token). */
  role?: Role;
}

export interface MemberView {
  userId: string;
  email: string;
  name: string;
  role: Role;
  disabled: boolean;
}

export class TeamService {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Creates a team; `ownerId` (the creator) becomes its owner. */
  async create(input: z.infer<typeof createTeamSchema>, ownerId: string | null): Promise<TeamView> {
    const slug = input.slug ?? slugify(input.name);
    if (!slug) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'team name must contain letters or digits');
    const clash = await this.#db.selectFrom('teams').select('id').where('slug', '=', slug).executeTakeFirst();
    if (clash)
      throw new MinipaasError('MINIPAAS_ERR_TEAM_EXISTS', `a team with slug "${slug}" already exists`);
    const id = randomUUID();
    await this.#db.transaction().execute(async (trx) => {
      await trx.insertInto('teams').values({ id, name: input.name, slug }).execute();
      if (ownerId)
        await trx
          .insertInto('team_members')
          .values({ team_id: id, user_id: ownerId, role: 'owner' })
          .execute();
    });
    return this.get(id);
  }

  async get(id: string): Promise<TeamView> {
    const t = await this.#db.selectFrom('teams').selectAll().where('id', '=', id).executeTakeFirst();
    if (!t) throw new MinipaasError('MINIPAAS_ERR_TEAM_NOT_FOUND', `team "${id}" not found`);
    return { id: t.id, name: t.name, slug: t.slug, createdAt: new Date(t.created_at).toISOString() };
  }

  /** The teams with these ids (`all`: every team), with the caller's role in each. */
  async list(roles: ReadonlyMap<string, Role> | 'all'): Promise<TeamView[]> {
    let q = this.#db.selectFrom('teams').selectAll().orderBy('slug');
    if (roles !== 'all') {
      if (roles.size === 0) return [];
      q = q.where('id', 'in', [...roles.keys()]);
    }
    return (await q.execute()).map((t) => ({
      id: t.id,
      name: t.name,
      slug: t.slug,
      createdAt: new Date(t.created_at).toISOString(),
      ...(roles !== 'all' && roles.get(t.id) ? { role: roles.get(t.id) as Role } : {}),
    }));
  }

  async members(teamId: string): Promise<MemberView[]> {
    const rows = await this.#db
      .selectFrom('team_members')
      .innerJoin('users', 'users.id', 'team_members.user_id')
      .select(['users.id', 'users.email', 'users.name', 'users.disabled', 'team_members.role'])
      .where('team_members.team_id', '=', teamId)
      .orderBy('users.email')
      .execute();
    return rows.map((r) => ({
      userId: r.id,
      email: r.email,
      name: r.name,
      role: r.role as Role,
      disabled: r.disabled,
    }));
  }

  async #userId(ref: string): Promise<string> {
    const row = await this.#db
      .selectFrom('users')
      .select('id')
      .where((eb) =>
        ref.includes('@') ? eb(eb.fn('lower', ['email']), '=', ref.toLowerCase()) : eb('id', '=', ref),
      )
      .executeTakeFirst();
    if (!row)
      throw new MinipaasError(
        'MINIPAAS_ERR_USER_NOT_FOUND',
        `user "${ref.slice(0, 100).replace(/[^\x20-\x7e]/g, '?')}" not found`,
      );
    return row.id;
  }

  /**
   * Adds a member or changes their role. `callerRole` is the caller's role in the team (null: a
   * platform-wide token holding `owner`-level rights is passed as `owner`): nobody grants a role above
   * their own, and only an owner changes an owner's role or makes an owner.
   */
  async setMember(teamId: string, userRef: string, role: Role, callerRole: Role): Promise<MemberView> {
    const userId = await this.#userId(userRef);
    if (!roleAtLeast(callerRole, role))
      throw new MinipaasError('MINIPAAS_ERR_FORBIDDEN', `you (${callerRole}) cannot grant the ${role} role`);
    const current = await this.#db
      .selectFrom('team_members')
      .select('role')
      .where('team_id', '=', teamId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (current?.role === 'owner' && role !== 'owner') {
      if (callerRole !== 'owner')
        throw new MinipaasError('MINIPAAS_ERR_FORBIDDEN', "only an owner can change an owner's role");
      await this.#keepAnOwner(teamId, userId);
    }
    await this.#db
      .insertInto('team_members')
      .values({ team_id: teamId, user_id: userId, role })
      .onConflict((oc) => oc.columns(['team_id', 'user_id']).doUpdateSet({ role }))
      .execute();
    const m = (await this.members(teamId)).find((x) => x.userId === userId);
    if (!m) throw new MinipaasError('MINIPAAS_ERR_INTERNAL', 'member vanished');
    return m;
  }

  async removeMember(teamId: string, userRef: string, callerRole: Role): Promise<void> {
    const userId = await this.#userId(userRef);
    const current = await this.#db
      .selectFrom('team_members')
      .select('role')
      .where('team_id', '=', teamId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (!current)
      throw new MinipaasError(
        'MINIPAAS_ERR_USER_NOT_FOUND',
        `user "${userRef.slice(0, 100)}" is not a member`,
      );
    if (current.role === 'owner') {
      if (callerRole !== 'owner')
        throw new MinipaasError('MINIPAAS_ERR_FORBIDDEN', 'only an owner can remove an owner');
      await this.#keepAnOwner(teamId, userId);
    }
    await this.#db
      .deleteFrom('team_members')
      .where('team_id', '=', teamId)
      .where('user_id', '=', userId)
      .execute();
  }

  async #keepAnOwner(teamId: string, leaving: string): Promise<void> {
    const others = await this.#db
      .selectFrom('team_members')
      .select('user_id')
      .where('team_id', '=', teamId)
      .where('role', '=', 'owner')
      .where('user_id', '!=', leaving)
      .executeTakeFirst();
    if (!others)
      throw new MinipaasError(
        'MINIPAAS_ERR_CONFLICT',
        'a team keeps at least one owner: make someone else owner first',
      );
  }

  /** Deletes an empty team (not the platform team). */
  async delete(teamId: string): Promise<void> {
    if (teamId === 'default')
      throw new MinipaasError('MINIPAAS_ERR_CONFLICT', 'the platform team "default" cannot be deleted');
    const project = await this.#db
      .selectFrom('projects')
      .select('slug')
      .where('team_id', '=', teamId)
      .executeTakeFirst();
    if (project)
      throw new MinipaasError(
        'MINIPAAS_ERR_CONFLICT',
        `the team still owns projects (e.g. "${project.slug}")`,
      );
    await this.#db.deleteFrom('teams').where('id', '=', teamId).execute();
  }
}
