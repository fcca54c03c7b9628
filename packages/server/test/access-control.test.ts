/**
 * Access control end to end in-process (`app.inject`) on a real PostgreSQL database:
 * - every route declares an action (walks `controlPlane.routes`);
 * - the matrix: every non-public route × (owner, admin, developer, viewer, a token scoped to another
 *   project, a member of another team only, no credentials, an expired token, a revoked token) gives
 *   the expected 2xx/401/403/404. A probe hook answers 299 just before the handler would run, so the
 *   matrix reaches every route without changing anything (handlers run in the other tests);
 * - nothing of another team leaks through lists, logs, SSE streams or error messages;
 * - tokens (role cap, scope, expiry, revocation, last use), teams and members;
 * - the audit log holds one entry per mutating request of the matrix and cannot be changed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { ACTIONS, type Action, loadConfig, type Role, roleAtLeast } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testPostgresUrl } from '../../../test/helpers/postgres.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';
import { hashToken } from '../src/services/token-service.ts';

if (!testPostgresUrl() && process.env.CI) throw new Error('CI needs the test PostgreSQL server');

type Who =
  | 'owner'
  | 'admin'
  | 'developer'
  | 'viewer'
  | 'scoped'
  | 'outsider'
  | 'none'
  | 'expired'
  | 'revoked';
const WHO: Who[] = [
  'owner',
  'admin',
  'developer',
  'viewer',
  'scoped',
  'outsider',
  'none',
  'expired',
  'revoked',
];

let cp: ControlPlane;
let agent: AgentHandle | undefined;
let home: string;
let drop: () => Promise<void> = async () => {};
const tokens = {} as Record<Who, string | undefined>;
const ids = {} as Record<string, string>;

const db = () => cp.ctx.store.db;
const headers = (who: Who): Record<string, string> =>
  tokens[who] ? { authorization: `Bearer ${tokens[who]}` } : {};
async function call(who: Who, method: string, url: string, body?: unknown) {
  return cp.app.inject({
    method: method as 'GET',
    url,
    headers: headers(who),
    ...(body === undefined ? {} : { payload: body as object }),
  });
}

/** A token for a user, written straight to the table (users get tokens through the API in other tests). */
async function tokenFor(
  userId: string,
  role: Role,
  extra: { projectId?: string; expiresAt?: Date } = {},
): Promise<string> {
  const token = `mp_${randomBytes(24).toString('base64url')}`;
  await db()
    .insertInto('api_tokens')
    .values({
      id: randomUUID(),
      name: `t-${role}`,
      role,
      token_hash: hashToken(token),
      user_id: userId,
      project_id: extra.projectId ?? null,
      expires_at: extra.expiresAt ?? null,
    })
    .execute();
  return token;
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-access-'));
  const pg = await createTestDatabase('access');
  drop = pg.drop;
  // Apps get OS users: a uid range of their own, so parallel test files never collide.
  const uidMin = 100_000 + Math.floor(Math.random() * 9000) * 100;
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_LOG_LEVEL: 'silent',
    MINIPAAS_APP_UID_MIN: String(uidMin),
    MINIPAAS_APP_UID_MAX: String(uidMin + 99),
  });
  // A real agent: deleting the apps at the end stops them there and removes their OS users.
  agent = await startAgent({
    config,
    logger: pino({ level: 'silent' }),
    router: { host: '127.0.0.1', port: 0 },
  });
  cp = await createControlPlane({
    config: { ...config, databaseUrl: pg.url },
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger: pino({ level: 'silent' }),
    reconcile: false,
    buildWorker: 'none',
  });
  // The matrix probe: a request carrying x-matrix-probe passed authentication and access control
  // (onRequest hooks) when it reaches this point; answer before the handler changes anything.
  cp.app.addHook('preHandler', async (req, reply) => {
    if (req.headers['x-matrix-probe'] === '1') return reply.code(299).send({ probe: true });
  });
  tokens.owner = cp.createdAdminToken ?? undefined;
  expect(tokens.owner).toBeTruthy();

  // Team default (the platform team): owner, admin, developer, viewer. Team "other": its owner only.
  for (const role of ['admin', 'developer', 'viewer'] as const) {
    const r = await call('owner', 'POST', '/api/v1/users', { email: `${role}@example.com`, role });
    expect(r.statusCode, r.body).toBe(201);
    ids[role] = r.json().id;
    tokens[role] = await tokenFor(ids[role] as string, role);
  }
  const outsider = await call('owner', 'POST', '/api/v1/users', { email: 'outsider@example.com' });
  expect(outsider.statusCode, outsider.body).toBe(201);
  ids.outsider = outsider.json().id;
  tokens.outsider = await tokenFor(ids.outsider as string, 'owner');
  const team = await call('outsider', 'POST', '/api/v1/teams', { name: 'Other' });
  // Creating teams is a platform action: the outsider is in no team of the platform yet.
  expect(team.statusCode).toBe(403);
  const other = await call('owner', 'POST', '/api/v1/teams', { name: 'Other' });
  expect(other.statusCode, other.body).toBe(201);
  ids.otherTeam = other.json().id;
  const add = await call('owner', 'PUT', '/api/v1/teams/other/members', {
    user: 'outsider@example.com',
    role: 'owner',
  });
  expect(add.statusCode, add.body).toBe(200);
  const drop1 = await call('owner', 'DELETE', '/api/v1/teams/other/members/owner');
  expect(drop1.statusCode, drop1.body).toBe(204);

  // Projects and apps: pa and pa2 in team default, pb in team other.
  for (const [slug, team] of [
    ['pa', 'default'],
    ['pa2', 'default'],
    ['pb', 'other'],
  ] as const) {
    const who: Who = team === 'other' ? 'outsider' : 'owner';
    const r = await call(who, 'POST', `/api/v1/projects?team=${team}`, { name: slug });
    expect(r.statusCode, r.body).toBe(201);
    ids[slug] = r.json().id;
  }
  for (const [name, project, who] of [
    ['appa', 'pa', 'owner'],
    ['appb', 'pb', 'outsider'],
  ] as const) {
    const r = await call(who, 'POST', '/api/v1/apps', { name, project });
    expect(r.statusCode, r.body).toBe(201);
    ids[name] = r.json().id;
  }
  const dep = await call('owner', 'POST', '/api/v1/apps/appa/deploy', { command: 'sleep 100' });
  expect(dep.statusCode, dep.body).toBe(202);
  ids.deployment = dep.json().id;
  const depB = await call('outsider', 'POST', '/api/v1/apps/appb/deploy', { command: 'sleep 100' });
  expect(depB.statusCode, depB.body).toBe(202);
  ids.deploymentB = depB.json().id;
  const vol = await call('owner', 'POST', '/api/v1/projects/pa/volumes', { name: 'data' });
  expect(vol.statusCode, vol.body).toBe(201);
  ids.volume = vol.json().id;

  // A developer token scoped to the other project of team default; expired and revoked tokens.
  tokens.scoped = await tokenFor(ids.developer as string, 'developer', { projectId: ids.pa2 as string });
  tokens.expired = await tokenFor(ids.developer as string, 'developer', {
    expiresAt: new Date(Date.now() - 1000),
  });
  const created = await call('developer', 'POST', '/api/v1/tokens', { name: 'soon revoked' });
  expect(created.statusCode, created.body).toBe(201);
  tokens.revoked = created.json().token;
  ids.revokedToken = created.json().id;
  const revoke = await call('developer', 'DELETE', `/api/v1/tokens/${ids.revokedToken}`);
  expect(revoke.statusCode, revoke.body).toBe(200);
  tokens.none = undefined;
}, 120_000);

afterAll(async () => {
  // Deleting the apps removes their OS users.
  if (cp)
    for (const [app, who] of [
      ['appa', 'owner'],
      ['appb', 'outsider'],
    ] as const)
      expect((await call(who, 'DELETE', `/api/v1/apps/${app}`)).statusCode).toBe(204);
  await cp?.close();
  await agent?.close();
  await drop();
  await rm(home, { recursive: true, force: true });
});

describe('routes', () => {
  it('every route that is not public declares a known action', () => {
    const undeclared = cp.routes
      .filter((r) => !r.public && r.method !== 'HEAD')
      .filter((r) => !r.action || !Object.hasOwn(ACTIONS, r.action))
      .map((r) => `${r.method} ${r.url}`);
    expect(undeclared).toEqual([]);
  });
});

/** The concrete URL of a route pattern, naming team default's fixtures. */
function concrete(url: string): string {
  const kind = /^\/api\/v1\/([a-z-]+)\//.exec(url)?.[1];
  return url.replace(/:(\w+)/g, (_m, name: string, offset: number) => {
    if (offset === url.indexOf(':')) {
      switch (kind) {
        case 'apps':
        case 'services':
          return 'appa';
        case 'projects':
          return 'pa';
        case 'deployments':
          return ids.deployment as string;
        case 'volumes':
          return ids.volume as string;
        case 'teams':
          return 'default';
        case 'tokens':
          return ids.revokedToken as string;
        case 'users':
          return ids.viewer as string;
      }
    }
    return name === 'user' ? (ids.viewer as string) : 'x';
  });
}

/** The role each caller holds in team default (null: not a member). */
const ROLE_IN_DEFAULT: Partial<Record<Who, Role>> = {
  owner: 'owner',
  admin: 'admin',
  developer: 'developer',
  viewer: 'viewer',
  scoped: 'developer',
};
/** The highest role each caller holds in any team. */
const BEST_ROLE: Partial<Record<Who, Role>> = { ...ROLE_IN_DEFAULT, outsider: 'owner' };
const TARGETED = /^\/api\/v1\/(apps|services|projects|deployments|volumes|teams)\/:/;

/** What the table of permissions says a caller gets (299: the handler would run). */
function expected(who: Who, url: string, action: Action): number {
  if (who === 'none' || who === 'expired' || who === 'revoked') return 401;
  const { role: min, scope } = ACTIONS[action];
  if (scope === 'self') return 299;
  if (scope === 'platform') {
    if (who === 'scoped') return 403;
    const r = ROLE_IN_DEFAULT[who];
    return r && roleAtLeast(r, min) ? 299 : 403;
  }
  if (!TARGETED.test(url)) {
    const r = BEST_ROLE[who];
    return r && roleAtLeast(r, min) ? 299 : 403;
  }
  // A target in team default (project pa): the outsider and the token scoped to pa2 cannot see it.
  if (who === 'outsider' || who === 'scoped') return 404;
  return roleAtLeast(ROLE_IN_DEFAULT[who] as Role, min) ? 299 : 403;
}

describe('the matrix', () => {
  it('answers every route × caller as the permission table says, and audits each mutating request', async () => {
    const routes = cp.routes.filter((r) => !r.public && r.method !== 'HEAD' && r.action);
    expect(routes.length).toBeGreaterThan(60);
    // Entries of the set-up requests are appended after their answers: start counting after a marker
    // request's entry, which comes after all of them.
    const marker = `marker-${randomUUID()}`;
    await call('none', 'DELETE', `/api/v1/tokens/${marker}`);
    let before = 0;
    for (let i = 0; i < 100 && !before; i++) {
      const m = await cp.ctx.audit.list({ targetId: marker, limit: 1 });
      if (m[0]) before = Number(m[0].id);
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(before).toBeGreaterThan(0);
    const wrong: string[] = [];
    const seen = new Map<number, number>();
    let mutating = 0;
    for (const r of routes) {
      const url = concrete(r.url);
      for (const who of WHO) {
        const res = await cp.app.inject({
          method: r.method as 'GET',
          url,
          headers: { ...headers(who), 'x-matrix-probe': '1' },
        });
        if (!['GET', 'HEAD', 'OPTIONS'].includes(r.method)) mutating++;
        seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1);
        const want = expected(who, r.url, r.action as Action);
        if (res.statusCode !== want)
          wrong.push(`${r.method} ${url} as ${who}: ${res.statusCode}, want ${want}`);
        if (res.statusCode === 404) {
          // Hidden exactly like a missing target: the message names only what the caller sent.
          expect(res.json().error.message).toMatch(/^[a-z]+ "[^"]*" not found$/);
        }
      }
    }
    expect(wrong).toEqual([]);
    // Each answer of the table happens (the probe never answers for a refused request).
    for (const status of [299, 401, 403, 404]) expect(seen.get(status) ?? 0).toBeGreaterThan(0);
    // One audit entry per mutating request (appended after each answer).
    const count = async () =>
      Number(
        (
          await db()
            .selectFrom('audit_log')
            .select((eb) => eb.fn.countAll().as('n'))
            .where('id', '>', before)
            .executeTakeFirstOrThrow()
        ).n,
      );
    for (let i = 0; i < 100 && (await count()) < mutating; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await count()).toBe(mutating);
    const denied = await cp.ctx.audit.list({ outcome: 'denied', afterId: before, limit: 1000 });
    expect(denied.length).toBeGreaterThan(0);
    expect(denied.every((e) => e.statusCode === 401 || e.statusCode === 403 || e.statusCode === 404)).toBe(
      true,
    );
  }, 300_000);
});

describe('no leaks between teams', () => {
  it('lists only the caller’s apps and projects', async () => {
    const apps = (who: Who) =>
      call(who, 'GET', '/api/v1/apps').then((r) => (r.json().apps as { name: string }[]).map((a) => a.name));
    expect(await apps('owner')).toEqual(['appa']);
    expect(await apps('viewer')).toEqual(['appa']);
    expect(await apps('outsider')).toEqual(['appb']);
    expect(await apps('scoped')).toEqual([]);
    const scopedTeams = (await call('scoped', 'GET', '/api/v1/teams')).json().teams as { slug: string }[];
    expect(scopedTeams.map((t) => t.slug)).toEqual(['default']);
    const projects = (await call('outsider', 'GET', '/api/v1/projects')).json().projects as {
      slug: string;
    }[];
    expect(projects.map((p) => p.slug)).toEqual(['pb']);
    const mine = (await call('owner', 'GET', '/api/v1/projects')).json().projects as { slug: string }[];
    expect(mine.map((p) => p.slug).sort()).toEqual(['default', 'pa', 'pa2']);
    // Filtering by another team's project is the same 404 as a missing one.
    const r = await call('owner', 'GET', '/api/v1/apps?project=pb');
    const missing = await call('owner', 'GET', '/api/v1/apps?project=nope');
    expect(r.statusCode).toBe(404);
    expect(r.json().error.message).toBe('project "pb" not found');
    expect(missing.json().error.message).toBe('project "nope" not found');
  });

  it('answers another team’s app, logs, deployments and SSE streams like missing ones', async () => {
    for (const url of [
      '/api/v1/apps/appb',
      '/api/v1/apps/appb/logs',
      '/api/v1/apps/appb/logs?follow=true',
      '/api/v1/apps/appb/deployments',
      `/api/v1/deployments/${ids.deploymentB}`,
      `/api/v1/deployments/${ids.deploymentB}/log`,
      `/api/v1/apps/${ids.appb}`,
    ]) {
      const r = await call('owner', 'GET', url);
      expect(r.statusCode, url).toBe(404);
      expect(r.body).not.toMatch(/outsider|team|"pb"|project|role/);
    }
    const ghost = await call('owner', 'GET', '/api/v1/apps/ghost');
    const hidden = await call('owner', 'GET', '/api/v1/apps/appb');
    expect(hidden.json().error.code).toBe(ghost.json().error.code);
    expect(hidden.json().error.message).toBe('app "appb" not found');
    // The outsider's own stream of its deployment works.
    const own = await call('outsider', 'GET', `/api/v1/deployments/${ids.deploymentB}`);
    expect(own.statusCode).toBe(200);
  });

  it('applies the same rules to git over HTTP (self-authenticated routes)', async () => {
    const git = (who: Who, app: string, service: string) =>
      cp.app.inject({
        method: 'GET',
        url: `/git/${app}.git/info/refs?service=${service}`,
        headers: { authorization: `Basic ${Buffer.from(`x:${tokens[who]}`).toString('base64')}` },
      });
    const hidden = await git('outsider', 'appa', 'git-upload-pack');
    expect(hidden.statusCode).toBe(404);
    expect(hidden.json().error.message).toBe('app "appa" not found');
    expect((await git('scoped', 'appa', 'git-upload-pack')).statusCode).toBe(404);
    expect((await git('viewer', 'appa', 'git-receive-pack')).statusCode).toBe(403);
    // A refused push attempt is in the audit log like a refused API request.
    const refused = await cp.ctx.audit.list({
      action: 'app:deploy',
      outcome: 'denied',
      targetId: 'appa',
      limit: 1,
    });
    expect(refused[0]).toMatchObject({
      actor: 'viewer@example.com',
      statusCode: 403,
      detail: { via: 'git push' },
    });
    expect((await git('revoked', 'appa', 'git-upload-pack')).statusCode).toBe(401);
  });

  it('refuses creating an app in another team’s project (named in the body) and changes nothing', async () => {
    const r = await call('developer', 'POST', '/api/v1/apps', { name: 'sneaky', project: 'pb' });
    expect(r.statusCode).toBe(404);
    const v = await call('viewer', 'POST', '/api/v1/apps', { name: 'sneaky', project: 'pa' });
    expect(v.statusCode).toBe(403);
    expect(v.json().error.message).toMatch(/app:create needs the developer role/);
    expect(
      await db().selectFrom('apps').select('id').where('name', '=', 'sneaky').executeTakeFirst(),
    ).toBeUndefined();
  });

  it('reveals secrets and add-on URLs only to developers and up', async () => {
    expect((await call('viewer', 'GET', '/api/v1/apps/appa?reveal=true')).statusCode).toBe(403);
    expect((await call('viewer', 'GET', '/api/v1/apps/appa')).statusCode).toBe(200);
    expect((await call('developer', 'GET', '/api/v1/apps/appa?reveal=true')).statusCode).toBe(200);
  });
});

describe('API tokens', () => {
  it('creates a token no stronger than its creator, lists it without the secret, revokes it', async () => {
    const high = await call('viewer', 'POST', '/api/v1/tokens', { name: 'x', role: 'developer' });
    expect(high.statusCode).toBe(403);
    expect(high.json().error.message).toMatch(/higher role than its creator/);
    const c = await call('admin', 'POST', '/api/v1/tokens', {
      name: 'ci',
      role: 'developer',
      project: 'pa',
      expiresInDays: 30,
    });
    expect(c.statusCode, c.body).toBe(201);
    const { token, id } = c.json() as { token: string; id: string };
    expect(c.json()).toMatchObject({ role: 'developer', projectId: ids.pa });
    const list = await call('admin', 'GET', '/api/v1/tokens');
    expect(list.body).not.toContain(token);
    expect(list.body).not.toContain(hashToken(token));
    expect((list.json().tokens as { id: string }[]).map((t) => t.id)).toContain(id);
    // Others do not see it; the platform owner does with ?all=true, the viewer may not ask.
    expect((await call('viewer', 'GET', '/api/v1/tokens')).body).not.toContain(id);
    expect((await call('owner', 'GET', '/api/v1/tokens?all=true')).body).toContain(id);
    expect((await call('viewer', 'GET', '/api/v1/tokens?all=true')).statusCode).toBe(403);
    // The token works in its project (and records its use), not outside it.
    const use = await cp.app.inject({
      method: 'GET',
      url: '/api/v1/apps/appa',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(use.statusCode).toBe(200);
    const row = await db()
      .selectFrom('api_tokens')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(row.last_used_at).not.toBeNull();
    expect(row.token_hash).toBe(hashToken(token));
    // Someone else cannot revoke it (404), its owner can; then it is refused with the reason.
    expect((await call('viewer', 'DELETE', `/api/v1/tokens/${id}`)).statusCode).toBe(404);
    expect((await call('admin', 'DELETE', `/api/v1/tokens/${id}`)).statusCode).toBe(200);
    const after = await cp.app.inject({
      method: 'GET',
      url: '/api/v1/apps/appa',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(after.statusCode).toBe(401);
    expect(after.json().error.message).toMatch(/revoked/);
    const expired = await call('expired', 'GET', '/api/v1/whoami');
    expect(expired.json().error.message).toMatch(/expired/);
  });

  it('refuses every token of a disabled user until enabled again', async () => {
    const off = await call('owner', 'PATCH', `/api/v1/users/${ids.viewer}`, { disabled: true });
    expect(off.statusCode, off.body).toBe(200);
    const r = await call('viewer', 'GET', '/api/v1/whoami');
    expect(r.statusCode).toBe(401);
    expect(r.json().error.message).toMatch(/disabled/);
    expect(
      (await call('admin', 'PATCH', `/api/v1/users/${ids.viewer}`, { disabled: false })).statusCode,
    ).toBe(403);
    expect((await call('owner', 'PATCH', '/api/v1/users/owner', { disabled: true })).statusCode).toBe(409);
    await call('owner', 'PATCH', `/api/v1/users/${ids.viewer}`, { disabled: false });
    expect((await call('viewer', 'GET', '/api/v1/whoami')).statusCode).toBe(200);
  });

  it('refuses hostile token input', async () => {
    for (const body of [
      { name: 'x', role: 'superuser' },
      { name: 'x', expiresAt: '2000-01-01T00:00:00Z' },
      { name: 'x', project: '../pb' },
      { name: 'x'.repeat(101) },
      { name: 'x', extra: 1 },
    ]) {
      const r = await call('viewer', 'POST', '/api/v1/tokens', body);
      expect(r.statusCode, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(r.statusCode).toBeLessThan(500);
    }
    const proto = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: { ...headers('viewer'), 'content-type': 'application/json' },
      payload: '{"name":"x","__proto__":{"role":"owner"}}',
    });
    expect(proto.statusCode).toBe(400);
    expect((await call('viewer', 'DELETE', '/api/v1/tokens/constructor')).statusCode).toBe(404);
  });

  it('whoami tells user, token and teams', async () => {
    const r = await call('developer', 'GET', '/api/v1/whoami');
    expect(r.json()).toMatchObject({
      user: { email: 'developer@example.com' },
      token: { role: 'developer' },
      teams: [{ slug: 'default', role: 'developer' }],
    });
  });
});

describe('browser sessions', () => {
  it('act as the logged-in user: their teams, their role, audited with the session id', async () => {
    const u = await call('owner', 'POST', '/api/v1/users', {
      email: 'web@example.com',
      password: 'correct horse battery',
      role: 'viewer',
    });
    expect(u.statusCode, u.body).toBe(201);
    const login = await cp.app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { login: 'web@example.com', password: 'correct horse battery' },
    });
    expect(login.statusCode, login.body).toBe(200);
    const cookie = login.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    const csrf = login.json().csrfToken as string;
    const session = login.json().session.id as string;
    const me = await cp.app.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie } });
    expect(me.json()).toMatchObject({
      token: null,
      session: true,
      user: { email: 'web@example.com' },
      teams: [{ slug: 'default', role: 'viewer' }],
    });
    const apps = await cp.app.inject({ method: 'GET', url: '/api/v1/apps', headers: { cookie } });
    expect((apps.json().apps as { name: string }[]).map((a) => a.name)).toEqual(['appa']);
    const scale = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps/appa/scale',
      headers: { cookie, 'x-csrf-token': csrf, origin: 'http://localhost' },
      payload: { web: 2 },
    });
    expect(scale.statusCode, scale.body).toBe(403);
    const entries = await cp.ctx.audit.list({ action: 'app:scale', outcome: 'denied', limit: 1 });
    expect(entries[0]).toMatchObject({ sessionId: session, actor: 'web@example.com' });
    const logins = await cp.ctx.audit.list({ action: 'login', limit: 1 });
    expect(logins[0]).toMatchObject({ outcome: 'success', sessionId: session });
  });
});

describe('teams', () => {
  it('admins manage members up to their own role; only owners touch owners', async () => {
    const add = await call('admin', 'PUT', '/api/v1/teams/default/members', {
      user: 'outsider@example.com',
      role: 'viewer',
    });
    expect(add.statusCode, add.body).toBe(200);
    const owner = await call('admin', 'PUT', '/api/v1/teams/default/members', {
      user: 'outsider@example.com',
      role: 'owner',
    });
    expect(owner.statusCode).toBe(403);
    const demote = await call('admin', 'PUT', '/api/v1/teams/default/members', {
      user: 'owner',
      role: 'viewer',
    });
    expect(demote.statusCode).toBe(403);
    const dev = await call('developer', 'PUT', '/api/v1/teams/default/members', {
      user: 'outsider@example.com',
      role: 'developer',
    });
    expect(dev.statusCode).toBe(403);
    expect((await call('admin', 'DELETE', `/api/v1/teams/default/members/${ids.outsider}`)).statusCode).toBe(
      204,
    );
    // The last owner stays.
    const last = await call('outsider', 'DELETE', `/api/v1/teams/other/members/${ids.outsider}`);
    expect(last.statusCode).toBe(409);
    // Team default's members are hidden from the outsider.
    expect((await call('outsider', 'GET', '/api/v1/teams/default')).statusCode).toBe(404);
    const teams = (await call('outsider', 'GET', '/api/v1/teams')).json().teams as { slug: string }[];
    expect(teams.map((t) => t.slug)).toEqual(['other']);
  });
});

describe('audit log', () => {
  it('records who did what, filters, and is readable by platform admins only', async () => {
    const r = await call('owner', 'GET', '/api/v1/audit?action=app:create&outcome=success');
    expect(r.statusCode).toBe(200);
    const entries = r.json().entries as { actor: string; targetId: string; teamId: string }[];
    expect(entries.some((e) => e.targetId === ids.appa && e.teamId === 'default')).toBe(true);
    expect((await call('developer', 'GET', '/api/v1/audit')).statusCode).toBe(403);
    expect((await call('outsider', 'GET', '/api/v1/audit')).statusCode).toBe(403);
    const denied = await call('admin', 'GET', '/api/v1/audit?outcome=denied&limit=5');
    expect(denied.json().entries).toHaveLength(5);
    expect((await call('owner', 'GET', '/api/v1/audit?action=DROP%20TABLE')).statusCode).toBe(400);
  });

  it('cannot be changed or deleted, even by SQL of the platform; pruning deletes only old entries', async () => {
    await expect(sql`UPDATE audit_log SET outcome = 'success'`.execute(db())).rejects.toThrow(/append-only/);
    await expect(sql`DELETE FROM audit_log`.execute(db())).rejects.toThrow(/append-only/);
    await expect(sql`TRUNCATE audit_log`.execute(db())).rejects.toThrow(/append-only/);
    const total = await cp.ctx.audit.lastId();
    await sql`INSERT INTO audit_log (at, action, outcome) VALUES (now() - interval '400 days', 'old', 'success')`.execute(
      db(),
    );
    expect(await cp.ctx.audit.prune(365)).toBe(1);
    expect(await cp.ctx.audit.list({ action: 'old' })).toEqual([]);
    expect((await cp.ctx.audit.list({ limit: 1 }))[0]?.id).toBe(String(total));
    // There is no API route that changes an entry.
    const mutating = cp.routes.filter(
      (r) => r.url.startsWith('/api/v1/audit') && r.method !== 'GET' && r.method !== 'HEAD',
    );
    expect(mutating).toEqual([]);
  });
});
