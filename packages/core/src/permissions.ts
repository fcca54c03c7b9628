/**
 * Who may do what: one table from role to actions, shared by the API (every route declares the action
 * it needs in its route config, `config: { action: 'app:deploy' }`) and by the CLI and dashboard (to
 * hide what a role cannot do). Roles are ordered: each one may do everything the roles below it may.
 */

/** Team roles, lowest first. */
export const ROLES = ['viewer', 'developer', 'admin', 'owner'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Every action a route can require, with the lowest role allowed to perform it.
 * Scope: `platform` actions are not tied to a project: the pre-handler checks the caller's role in the
 * platform team (`default`, whose first owner is created on first start), or a platform-wide token's
 * role, so owning a team one created never makes anyone a platform owner. `team` actions are checked
 * against the caller's role in the target team, `project` actions against the role the caller holds in
 * the team that owns the target's project. `self` actions only need an authenticated caller (they act on
 * the caller's own user and tokens).
 */
export const ACTIONS = {
  // Platform
  'platform:read': { role: 'viewer', scope: 'platform' },
  'platform:manage': { role: 'owner', scope: 'platform' },
  'backup:read': { role: 'admin', scope: 'platform' },
  'backup:create': { role: 'admin', scope: 'platform' },
  'backup:restore': { role: 'owner', scope: 'platform' },
  'user:read': { role: 'admin', scope: 'platform' },
  'user:manage': { role: 'owner', scope: 'platform' },
  'audit:read': { role: 'admin', scope: 'platform' },
  'build:read': { role: 'viewer', scope: 'platform' },
  // Teams (the target is a team)
  'team:read': { role: 'viewer', scope: 'team' },
  'team:create': { role: 'viewer', scope: 'platform' },
  'team:manage': { role: 'admin', scope: 'team' },
  'team:delete': { role: 'owner', scope: 'team' },
  'team:transfer': { role: 'owner', scope: 'team' },
  // The caller's own identity and API tokens (platform admins may also list and revoke anyone's)
  'self:read': { role: 'viewer', scope: 'self' },
  'token:read': { role: 'viewer', scope: 'self' },
  'token:create': { role: 'viewer', scope: 'self' },
  'token:revoke': { role: 'viewer', scope: 'self' },
  // Projects and apps (the target is a project, or an app inside one)
  'project:read': { role: 'viewer', scope: 'project' },
  'project:create': { role: 'admin', scope: 'team' },
  'project:delete': { role: 'admin', scope: 'project' },
  'app:read': { role: 'viewer', scope: 'project' },
  'app:create': { role: 'developer', scope: 'project' },
  'app:update': { role: 'developer', scope: 'project' },
  'app:delete': { role: 'admin', scope: 'project' },
  'app:deploy': { role: 'developer', scope: 'project' },
  'app:scale': { role: 'developer', scope: 'project' },
  'app:rollback': { role: 'developer', scope: 'project' },
  'app:logs': { role: 'developer', scope: 'project' },
  'app:env:read': { role: 'viewer', scope: 'project' },
  'app:env:write': { role: 'developer', scope: 'project' },
  'app:secret:reveal': { role: 'developer', scope: 'project' },
  'build:cancel': { role: 'developer', scope: 'project' },
  'addon:read': { role: 'viewer', scope: 'project' },
  'addon:create': { role: 'developer', scope: 'project' },
  'addon:delete': { role: 'admin', scope: 'project' },
  'addon:reveal': { role: 'developer', scope: 'project' },
  'addon:backup': { role: 'developer', scope: 'project' },
  'addon:restore': { role: 'admin', scope: 'project' },
  'webhook:manage': { role: 'admin', scope: 'project' },
  'domain:manage': { role: 'admin', scope: 'project' },
  'volume:read': { role: 'viewer', scope: 'project' },
  'volume:manage': { role: 'admin', scope: 'project' },
} as const satisfies Record<string, { role: Role; scope: ActionScope }>;

/** What an action's role is checked against (see ACTIONS). */
export type ActionScope = 'platform' | 'team' | 'project' | 'self';

export type Action = keyof typeof ACTIONS;

/** True when `role` ranks at least as high as `min`. */
export function roleAtLeast(role: Role, min: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(min);
}

/** True when a caller holding `role` may perform `action`. */
export function roleAllows(role: Role, action: Action): boolean {
  return roleAtLeast(role, ACTIONS[action].role);
}

/** True for a known action name (an own key of the table: `constructor` or `__proto__` are not). */
export function isAction(name: string): name is Action {
  return Object.hasOwn(ACTIONS, name);
}
