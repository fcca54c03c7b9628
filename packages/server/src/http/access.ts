/**
 * Authorization: who may do what to which target (docs/security.md, access control).
 *
 * Every non-public route declares `config: { action }` (packages/core/src/permissions.ts). After
 * authentication (http/auth.ts) one hook, still before the body is read, resolves the route's target
 * from its path parameters (an app, project, deployment, volume or team) and checks the caller's role
 * in the team that owns it:
 * - a target in a team the caller does not belong to (or outside a project-scoped token's project)
 *   is a 404 with the same message as a missing one, so nothing about it leaks;
 * - a role below the action's is a 403 that says which role is needed.
 * Routes whose target is in the body (creating an app in a project) or that list many targets
 * call `assertAllowed` / `visibleProjectIds` themselves.
 */
import { ACTIONS, type Action, isAction, MinipaasError, ROLES, type Role, roleAtLeast } from '@minipaas/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

/** The team whose members hold the platform roles (platform-scoped actions are checked there). */
export const PLATFORM_TEAM = 'default';

/** The authenticated caller of a request. */
export interface Principal {
  /** The user, or null for a platform-wide token. */
  userId: string | null;
  /** A readable name: the user's email, or the token's name. */
  name: string;
  /** The API token used, or null for a browser session. */
  tokenId: string | null;
  sessionId: string | null;
  /** The highest role the credential may use: a token's role, `owner` for a session. */
  cap: Role;
  /** A platform-wide token: `cap` is its role in every team. */
  everywhere: boolean;
  /** A project-scoped token's project. */
  projectId: string | null;
  /** The caller's teams and their role in each, already limited by `cap`. */
  teams: ReadonlyMap<string, Role>;
}

/** What a route acts on: a team, or a project and the team that owns it. */
export interface Target {
  kind: 'team' | 'project';
  teamId: string;
  projectId: string | null;
  /** The error a missing target gets (a caller outside its team gets the same one). */
  notFound: () => MinipaasError;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; null on public routes. */
    principal: Principal | null;
    /** The target the route's path names, resolved by the access hook (null when it names none). */
    accessTarget: Target | null;
    /** Set when access control refused the request (also when it answered 404 to hide a target). */
    accessDenied: boolean;
  }
}

const lowest = (a: Role, b: Role): Role => (ROLES.indexOf(a) <= ROLES.indexOf(b) ? a : b);

/** The caller's role in `teamId` (limited by the credential), or null when not a member. */
export function roleIn(p: Principal, teamId: string): Role | null {
  if (p.everywhere) return p.cap;
  return p.teams.get(teamId) ?? null;
}

const deny = (message: string) => new MinipaasError('MINIPAAS_ERR_FORBIDDEN', message);

/**
 * Throws unless the caller of `req` may perform `action` on `target` (default: the target the route's
 * path names). A target the caller cannot see throws its not-found error; too low a role a 403.
 * Without any target, checks that the caller holds the action's role somewhere (lists and creates
 * then check each target themselves).
 */
export function assertAllowed(
  req: FastifyRequest,
  action: Action,
  target: Target | null = req.accessTarget,
): void {
  const p = req.principal;
  if (!p) throw new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', 'this request is not authenticated');
  // The audit entry names the team and project a body-named target belongs to.
  if (target && !req.accessTarget) req.accessTarget = target;
  try {
    checkPrincipal(p, action, target);
  } catch (err) {
    req.accessDenied = true;
    throw err;
  }
}

/** `assertAllowed` for a principal outside a request (the same rules). */
export function checkPrincipal(p: Principal, action: Action, target: Target | null): void {
  const { role: min, scope } = ACTIONS[action];
  if (scope === 'self') return;
  if (scope === 'platform') {
    if (p.projectId) throw deny(`${action} is not allowed for a token scoped to one project`);
    const role = roleIn(p, PLATFORM_TEAM);
    if (!role)
      throw deny(`${action} needs the ${min} role on the platform (a member of team "${PLATFORM_TEAM}")`);
    if (!roleAtLeast(role, min))
      throw deny(`${action} needs the ${min} role on the platform; you have ${role}`);
    return;
  }
  if (!target) {
    // No single target: the route lists or creates and checks each one itself.
    if (p.everywhere ? roleAtLeast(p.cap, min) : [...p.teams.values()].some((r) => roleAtLeast(r, min)))
      return;
    throw deny(`${action} needs the ${min} role in a team`);
  }
  if (p.projectId && (target.kind !== 'project' || target.projectId !== p.projectId)) {
    // A project-scoped token sees nothing else.
    throw target.notFound();
  }
  const role = roleIn(p, target.teamId);
  if (!role) throw target.notFound();
  if (!roleAtLeast(role, min))
    throw deny(
      `${action} needs the ${min} role in the ${target.kind === 'team' ? 'team' : "project's team"}; you have ${role}`,
    );
}

/** True when the caller may perform `action` on `target` (no exception). */
export function isAllowed(p: Principal, action: Action, target: Target | null): boolean {
  try {
    checkPrincipal(p, action, target);
    return true;
  } catch (err) {
    if (err instanceof MinipaasError) return false;
    throw err;
  }
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const safe = (ref: string) => ref.slice(0, 60).replace(/[^\x20-\x7e]/g, '?');

/** Looks up the team (and project) of the targets routes name in their paths. */
export class AccessControl {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** A user's email and whether they are disabled. */
  async user(id: string): Promise<{ email: string; disabled: boolean } | null> {
    const row = await this.#db
      .selectFrom('users')
      .select(['email', 'disabled'])
      .where('id', '=', id)
      .executeTakeFirst();
    return row ?? null;
  }

  /** Who the caller is: token, user, teams with the role the credential holds in each. */
  async whoami(
    p: Principal,
    token: { id: string; name: string; role: Role; projectId: string | null } | null,
  ): Promise<{
    token: { id: string; name: string; role: Role; projectId: string | null } | null;
    user: { id: string; email: string; name: string } | null;
    session: boolean;
    platformWide: boolean;
    teams: Array<{ id: string; name: string; slug: string; role: Role }>;
  }> {
    const user = p.userId
      ? await this.#db
          .selectFrom('users')
          .select(['id', 'email', 'name'])
          .where('id', '=', p.userId)
          .executeTakeFirst()
      : undefined;
    const ids = [...p.teams.keys()];
    const teams = ids.length
      ? await this.#db
          .selectFrom('teams')
          .select(['id', 'name', 'slug'])
          .where('id', 'in', ids)
          .orderBy('name')
          .execute()
      : [];
    return {
      token: token && { id: token.id, name: token.name, role: token.role, projectId: token.projectId },
      user: user ?? null,
      session: p.sessionId !== null,
      platformWide: p.everywhere,
      teams: teams.map((t) => ({ ...t, role: p.teams.get(t.id) as Role })),
    };
  }

  /** The caller's teams and role in each (limited by `cap`). */
  async teamsOf(userId: string, cap: Role): Promise<Map<string, Role>> {
    const rows = await this.#db
      .selectFrom('team_members')
      .select(['team_id', 'role'])
      .where('user_id', '=', userId)
      .execute();
    return new Map(rows.map((r) => [r.team_id, lowest(r.role as Role, cap)]));
  }

  /** The project ids the caller may read (`all` for a platform-wide token without a project scope). */
  async visibleProjectIds(p: Principal, action: Action = 'project:read'): Promise<string[] | 'all'> {
    const min = ACTIONS[action].role;
    if (p.everywhere && !p.projectId) return roleAtLeast(p.cap, min) ? 'all' : [];
    const teams = [...p.teams].filter(([, r]) => roleAtLeast(r, min)).map(([t]) => t);
    let q = this.#db.selectFrom('projects').select('id');
    if (!p.everywhere) {
      if (teams.length === 0) return [];
      q = q.where('team_id', 'in', teams);
    }
    if (p.projectId) q = q.where('id', '=', p.projectId);
    return (await q.execute()).map((r) => r.id);
  }

  /** The project (by id or slug) as a target. */
  async project(ref: string): Promise<Target> {
    const notFound = () =>
      new MinipaasError('MINIPAAS_ERR_PROJECT_NOT_FOUND', `project "${safe(ref)}" not found`);
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/.test(ref))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `"${safe(ref)}" is neither a project slug nor a project id`,
      );
    const row = await this.#db
      .selectFrom('projects')
      .select(['id', 'team_id'])
      .where((eb) => eb.or([eb('id', '=', ref), eb('slug', '=', ref)]))
      .executeTakeFirst();
    if (!row) throw notFound();
    return { kind: 'project', teamId: row.team_id, projectId: row.id, notFound };
  }

  /** The app (by id or name) as a target: its project. */
  async app(ref: string): Promise<Target> {
    const notFound = () => new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app "${safe(ref)}" not found`);
    const byId = UUID_RE.test(ref);
    if (!byId && !/^[a-z0-9][a-z0-9-]{0,62}$/.test(ref))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `"${safe(ref)}" is neither an app name nor an app id`,
      );
    const row = await this.#db
      .selectFrom('apps')
      .innerJoin('projects', 'projects.id', 'apps.project_id')
      .select(['apps.project_id', 'projects.team_id'])
      .where(byId ? 'apps.id' : 'apps.name', '=', byId ? ref.toLowerCase() : ref)
      .executeTakeFirst();
    if (!row) throw notFound();
    return { kind: 'project', teamId: row.team_id, projectId: row.project_id, notFound };
  }

  async deployment(id: string): Promise<Target> {
    const notFound = () =>
      new MinipaasError('MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND', `deployment "${safe(id)}" not found`);
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(id)) throw notFound();
    const row = await this.#db
      .selectFrom('deployments')
      .innerJoin('apps', 'apps.id', 'deployments.app_id')
      .innerJoin('projects', 'projects.id', 'apps.project_id')
      .select(['apps.project_id', 'projects.team_id'])
      .where('deployments.id', '=', id)
      .executeTakeFirst();
    if (!row) throw notFound();
    return { kind: 'project', teamId: row.team_id, projectId: row.project_id, notFound };
  }

  async volume(id: string): Promise<Target> {
    const notFound = () =>
      new MinipaasError('MINIPAAS_ERR_VOLUME_NOT_FOUND', `volume "${safe(id)}" not found`);
    if (!UUID_RE.test(id)) throw notFound();
    const row = await this.#db
      .selectFrom('volumes')
      .innerJoin('projects', 'projects.id', 'volumes.project_id')
      .select(['volumes.project_id', 'projects.team_id'])
      .where('volumes.id', '=', id)
      .executeTakeFirst();
    if (!row) throw notFound();
    return { kind: 'project', teamId: row.team_id, projectId: row.project_id, notFound };
  }

  /** The team (by id or slug) as a target. */
  async team(ref: string): Promise<Target> {
    const notFound = () => new MinipaasError('MINIPAAS_ERR_TEAM_NOT_FOUND', `team "${safe(ref)}" not found`);
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/.test(ref)) throw notFound();
    const row = await this.#db
      .selectFrom('teams')
      .select('id')
      .where((eb) => eb.or([eb('id', '=', ref), eb('slug', '=', ref)]))
      .executeTakeFirst();
    if (!row) throw notFound();
    return { kind: 'team', teamId: row.id, projectId: null, notFound };
  }

  /**
   * The target a route's path names, from its URL pattern: `/api/v1/apps/:id…` (and `/services/:id`)
   * an app, `/projects/:id…` a project, `/deployments/:id…`, `/volumes/:id…`, `/teams/:team…`.
   * Null when the path names none.
   */
  async targetOf(url: string, params: Record<string, string>): Promise<Target | null> {
    const m = /^\/api\/v1\/(apps|services|projects|deployments|volumes|teams)\/:(\w+)/.exec(url);
    if (!m) return null;
    const ref = params[m[2] as string];
    if (typeof ref !== 'string') return null;
    switch (m[1]) {
      case 'apps':
      case 'services':
        return this.app(ref);
      case 'projects':
        return this.project(ref);
      case 'deployments':
        return this.deployment(ref);
      case 'volumes':
        return this.volume(ref);
      default:
        return this.team(ref);
    }
  }
}

/**
 * Enforces every route's declared action (after authentication; public routes are skipped). A
 * non-public route without a declared action is refused: it is a programming error, never open.
 */
export function registerAccessControl(app: FastifyInstance, access: AccessControl): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('accessTarget', null);
  app.decorateRequest('accessDenied', false);
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config?.public === true) return;
    if (!req.routeOptions.url) return; // no route matched: the 404 handler answers
    // Authentication ran first and set the caller; without one, fail closed.
    if (!req.principal)
      throw new MinipaasError('MINIPAAS_ERR_UNAUTHENTICATED', 'this request is not authenticated');
    const action = req.routeOptions.config?.action;
    if (typeof action !== 'string' || !isAction(action))
      throw deny(`route ${req.method} ${req.routeOptions.url} declares no permission`);
    req.accessTarget = await access.targetOf(
      req.routeOptions.url,
      (req.params ?? {}) as Record<string, string>,
    );
    assertAllowed(req, action);
  });
}
