/**
 * Browser login end to end in one control plane on a real Postgres database: password login (JSON and
 * the landing page's form) with the per-user and per-address lockout, the session cookie and CSRF
 * protection, logout, and the GitHub and OIDC flows driven by a scripted browser over real HTTP against
 * a local GitHub stand-in and a real `oidc-provider`, with identities mapped by verified email or invite.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import type { LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GithubStandIn, startGithubStandIn } from '../../../test/helpers/github-oauth-server.ts';
import { type OidcTestProvider, startOidcProvider } from '../../../test/helpers/oidc-server.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { ScriptedBrowser } from '../../../test/helpers/scripted-browser.ts';
import { hashPassword } from '../src/auth/password-hash.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let cp: ControlPlane;
let base: string;
let gh: GithubStandIn;
let op: OidcTestProvider;
let dropDb: () => Promise<void> = async () => {};
let admin: { authorization: string };
const PASSWORD = 'correct horse battery staple';

async function addUser(
  id: string,
  email: string,
  opts: { password?: string; role?: string; disabled?: boolean } = {},
) {
  const db = cp.ctx.store.db;
  await db
    .insertInto('users')
    .values({
      id,
      email,
      name: id,
      password_hash: opts.password ? await hashPassword(opts.password) : null,
      disabled: opts.disabled ?? false,
    })
    .execute();
  if (opts.role)
    await db
      .insertInto('team_members')
      .values({ team_id: 'default', user_id: id, role: opts.role })
      .execute();
}

/** The cookies a response sets, by name (value and attributes). */
function setCookies(res: LightMyRequestResponse | Response): Map<string, string> {
  const lines =
    res instanceof Response
      ? res.headers.getSetCookie()
      : ([res.headers['set-cookie'] ?? []].flat() as string[]);
  return new Map(lines.map((l) => [l.slice(0, l.indexOf('=')), l]));
}

function cookieValue(line: string | undefined): string {
  if (!line) throw new Error('cookie not set');
  return (line.split(';')[0] as string).slice(line.indexOf('=') + 1);
}

async function passwordLogin(login: string, password: string, remoteAddress = '127.0.0.1') {
  return cp.app.inject({ method: 'POST', url: '/auth/login', payload: { login, password }, remoteAddress });
}

async function sessionOf(login: string): Promise<{ cookie: string; csrf: string }> {
  const res = await passwordLogin(login, PASSWORD);
  expect(res.statusCode).toBe(200);
  const cookies = setCookies(res);
  return {
    cookie: `minipaas_session=${cookieValue(cookies.get('minipaas_session'))}`,
    csrf: res.json<{ csrfToken: string }>().csrfToken,
  };
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-login-'));
  const db = await createTestDatabase('login');
  dropDb = db.drop;
  const apiPort = await freePort();
  base = `http://127.0.0.1:${apiPort}`;
  gh = await startGithubStandIn({
    clientId: 'gh-client',
    clientSecret: 'gh-secret',
    account: {
      id: 1001,
      login: 'octo',
      emails: [{ email: 'octo@example.com', verified: true, primary: true }],
    },
  });
  op = await startOidcProvider({
    clientId: 'minipaas',
    clientSecret: 'oidc-client-secret',
    redirectUris: [`${base}/auth/oidc/sso/callback`],
    account: { sub: 'sub-dana', email: 'Dana@Example.com', emailVerified: true, name: 'Dana' },
  });
  const config = await loadConfig({
    MINIPAAS_HOME: home,
    DATABASE_URL: db.url,
    MINIPAAS_API_PORT: String(apiPort),
    MINIPAAS_LOG_LEVEL: 'silent',
    MINIPAAS_LOGIN_MAX_FAILURES: '20',
    MINIPAAS_LOGIN_MAX_FAILURES_PER_IP: '30',
    MINIPAAS_GITHUB_CLIENT_ID: 'gh-client',
    MINIPAAS_GITHUB_CLIENT_SECRET: 'gh-secret',
    MINIPAAS_GITHUB_AUTHORIZE_URL: gh.authorizeUrl,
    MINIPAAS_GITHUB_TOKEN_URL: gh.tokenUrl,
    MINIPAAS_GITHUB_API_URL: gh.apiUrl,
    MINIPAAS_OIDC_ISSUER: op.issuer,
    MINIPAAS_OIDC_CLIENT_ID: 'minipaas',
    MINIPAAS_OIDC_CLIENT_SECRET: 'oidc-client-secret',
    MINIPAAS_OIDC_LABEL: 'Login with Corp SSO',
  });
  cp = await createControlPlane({
    config,
    drivers: [new ProcessDriver(new AgentClient(join(home, 'run', 'agent.sock')))],
    logger: pino({ level: process.env.LOGIN_TEST_LOG ?? 'silent' }),
    reconcile: false,
    buildWorker: 'none',
  });
  await cp.listen();
  admin = { authorization: `Bearer ${cp.createdAdminToken}` };
  await addUser('alice', 'alice@example.com', { password: PASSWORD, role: 'developer' });
  await addUser('bob', 'bob@example.com', { password: PASSWORD, role: 'viewer' });
  await addUser('octo', 'OCTO@example.com', { role: 'viewer' });
  await addUser('dana', 'dana@example.com', { role: 'viewer' });
  await addUser('carol', 'carol@corp.example', { role: 'viewer' });
  await addUser('gone', 'gone@example.com', { password: PASSWORD, role: 'viewer', disabled: true });
  const app = await cp.app.inject({
    method: 'POST',
    url: '/api/v1/apps',
    headers: admin,
    payload: { name: 'web' },
  });
  expect(app.statusCode).toBe(201);
}, 120_000);

afterAll(async () => {
  await cp?.close();
  await gh?.close();
  await op?.close();
  await dropDb();
  await rm(home, { recursive: true, force: true });
});

describe('landing page', () => {
  it('serves the landing page with the configured login options to visitors', async () => {
    const res = await cp.app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.body).toContain('Self-hosted platform-as-a-service with minimal dependencies.');
    expect(res.body).toContain('href="/auth/github"');
    expect(res.body).toContain('href="/auth/oidc/sso"');
    expect(res.body).toContain('Login with Corp SSO');
    expect(res.body).toContain('action="/auth/login"');
    expect(res.body).not.toMatch(/<script/i);
  });

  it('is declared public, like every /auth route except invites', () => {
    const mine = cp.routes.filter((r) => r.url === '/' || r.url.startsWith('/auth/'));
    expect(mine.filter((r) => !r.public).map((r) => `${r.method} ${r.url}`)).toEqual(['POST /auth/invites']);
  });
});

describe('password login', () => {
  it('refuses a wrong password and an unknown user alike', async () => {
    const wrong = await passwordLogin('alice@example.com', 'nope');
    const unknown = await passwordLogin('nobody@example.com', 'nope');
    for (const r of [wrong, unknown]) {
      expect(r.statusCode).toBe(401);
      expect(r.json().error.message).toBe('wrong email or password');
      expect(r.headers['set-cookie']).toBeUndefined();
    }
  });

  it('refuses a disabled user with the right password', async () => {
    expect((await passwordLogin('gone@example.com', PASSWORD)).statusCode).toBe(401);
  });

  it('sets an HttpOnly SameSite session cookie and shows the signed-in page', async () => {
    const res = await passwordLogin('ALICE@example.com', PASSWORD);
    expect(res.statusCode).toBe(200);
    const body = res.json<{ user: { id: string }; csrfToken: string; session: { id: string } }>();
    expect(body.user.id).toBe('alice');
    const cookie = setCookies(res).get('minipaas_session') as string;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toMatch(/Secure/); // plain http; Secure with https or MINIPAAS_SECURE_COOKIES=on
    const page = await cp.app.inject({
      method: 'GET',
      url: '/',
      headers: { cookie: `minipaas_session=${cookieValue(cookie)}` },
    });
    expect(page.body).toContain('Signed in as alice (alice@example.com).');
    expect(page.body).toContain('<td>Default</td><td>developer</td>');
    expect(page.body).toMatch(
      /<td>web<\/td><td>[^<]+<\/td><td>[^<]+<\/td><td><a href="http:\/\/web\.localhost/,
    );
    expect(page.body).toContain(`name="_csrf" value="${body.csrfToken}"`);
    expect(page.headers['cache-control']).toBe('no-store');
  });

  it('logs in from the landing page form with a redirect', async () => {
    const ok = await cp.app.inject({
      method: 'POST',
      url: '/auth/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://localhost:80' },
      payload: `login=bob%40example.com&password=${encodeURIComponent(PASSWORD)}`,
    });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe('/');
    expect(setCookies(ok).get('minipaas_session')).toMatch(/HttpOnly/);
    const bad = await cp.app.inject({
      method: 'POST',
      url: '/auth/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'login=bob%40example.com&password=wrong',
    });
    expect(bad.statusCode).toBe(303);
    expect(bad.headers.location).toBe('/?login=failed#login');
    const shown = await cp.app.inject({ method: 'GET', url: '/?login=failed' });
    expect(shown.body).toContain('Wrong email or password.');
  });

  it('refuses a login form posted from another site', async () => {
    const res = await cp.app.inject({
      method: 'POST',
      url: '/auth/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      payload: `login=bob%40example.com&password=${encodeURIComponent(PASSWORD)}`,
    });
    expect(res.statusCode).toBe(403);
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('answers hostile input with a 400 and no session', async () => {
    for (const payload of [
      { login: 'alice@example.com', password: 'x'.repeat(5000) },
      { login: 'a'.repeat(500), password: 'x' },
      { __proto__: { login: 'alice@example.com' }, password: PASSWORD },
      { login: ['alice@example.com'], password: PASSWORD },
      { constructor: 'x' },
    ]) {
      const res = await cp.app.inject({
        method: 'POST',
        url: '/auth/login',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
      expect(res.statusCode).toBe(400);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
  });

  it('locks a user after 20 wrong passwords, even for the right one, and not other users', async () => {
    await addUser('mallory-target', 'target@example.com', { password: PASSWORD, role: 'viewer' });
    for (let i = 0; i < 20; i++) {
      const r = await passwordLogin('target@example.com', `guess-${i}`, `10.0.0.${i + 1}`);
      expect(r.statusCode).toBe(401);
    }
    const locked = await passwordLogin('target@example.com', PASSWORD, '10.0.1.1');
    expect(locked.statusCode).toBe(429);
    expect(locked.json().error.code).toBe('MINIPAAS_ERR_RATE_LIMITED');
    expect(locked.headers['set-cookie']).toBeUndefined();
    expect((await passwordLogin('bob@example.com', PASSWORD, '10.0.1.1')).statusCode).toBe(200);
  });

  it('keeps the limit under parallel guessing', async () => {
    await addUser('grace', 'grace@example.com', { password: PASSWORD, role: 'viewer' });
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        passwordLogin('grace@example.com', `guess-${i}`, `10.2.0.${i + 1}`),
      ),
    );
    const statuses = answers.map((r) => r.statusCode);
    // Every attempt over the 20th is refused unchecked, however they interleave.
    expect(statuses.filter((s) => s === 401)).toHaveLength(20);
    expect(statuses.filter((s) => s === 429)).toHaveLength(20);
    expect((await passwordLogin('grace@example.com', PASSWORD, '10.2.1.1')).statusCode).toBe(429);
  });

  it('locks an address after its limit of wrong passwords across users', async () => {
    await addUser('erin', 'erin@example.com', { password: PASSWORD, role: 'viewer' });
    for (let i = 0; i < 30; i++)
      expect((await passwordLogin(`user${i}@example.com`, 'guess', '10.9.9.9')).statusCode).toBe(401);
    expect((await passwordLogin('erin@example.com', PASSWORD, '10.9.9.9')).statusCode).toBe(429);
    expect((await passwordLogin('erin@example.com', PASSWORD, '10.9.9.10')).statusCode).toBe(200);
  });
});

describe('audit log', () => {
  it('holds the logins, failed logins and locked attempts', async () => {
    const rows = await cp.ctx.store.db
      .selectFrom('audit_log')
      .select(['action', 'outcome', 'actor_user_id', 'actor', 'ip', 'session_id'])
      .where('action', '=', 'login')
      .execute();
    expect(rows).toContainEqual(
      expect.objectContaining({ outcome: 'failure', actor: 'nobody@example.com', actor_user_id: null }),
    );
    expect(rows).toContainEqual(
      expect.objectContaining({
        outcome: 'success',
        actor_user_id: 'alice',
        session_id: expect.stringMatching(/^ses_/),
      }),
    );
    expect(rows).toContainEqual(
      expect.objectContaining({ outcome: 'denied', actor: 'target@example.com', ip: '10.0.1.1' }),
    );
  });
});

describe('session cookie and CSRF', () => {
  it('refuses a state-changing request with the cookie but without the CSRF token, and changes nothing', async () => {
    const s = await sessionOf('alice@example.com');
    const before = await cp.app.inject({ method: 'GET', url: '/api/v1/apps', headers: admin });
    for (const headers of [
      { cookie: s.cookie },
      { cookie: s.cookie, 'x-csrf-token': 'not-the-token' },
      { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'https://evil.example' },
      { cookie: s.cookie, 'x-csrf-token': s.csrf, 'sec-fetch-site': 'cross-site' },
      // An app at APP.localhost is same-site with an API at localhost: refused too.
      { cookie: s.cookie, 'x-csrf-token': s.csrf, 'sec-fetch-site': 'same-site' },
      { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'null', 'sec-fetch-site': 'cross-site' },
      { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'null' },
    ]) {
      const res = await cp.app.inject({
        method: 'POST',
        url: '/api/v1/apps',
        headers: { ...headers, 'content-type': 'application/json' },
        payload: { name: 'csrf-victim' },
      });
      expect(res.statusCode).toBe(403);
    }
    const forged = await cp.app.inject({
      method: 'POST',
      url: '/auth/logout',
      headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: '_csrf=wrong',
    });
    expect(forged.statusCode).toBe(403);
    const after = await cp.app.inject({ method: 'GET', url: '/api/v1/apps', headers: admin });
    expect(after.body).toBe(before.body);
    const still = await cp.app.inject({ method: 'GET', url: '/auth/session', headers: { cookie: s.cookie } });
    expect(still.statusCode).toBe(200);
    expect(still.json().user.id).toBe('alice');
  });

  it('lets the same request through with the CSRF token, as the user of the session', async () => {
    const s = await sessionOf('alice@example.com');
    const res = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps',
      headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'sec-fetch-site': 'same-origin' },
      payload: { name: 'made-by-alice' },
    });
    expect(res.statusCode).toBe(201);
    const read = await cp.app.inject({ method: 'GET', url: '/api/v1/apps', headers: { cookie: s.cookie } });
    expect(read.statusCode).toBe(200);
    expect(read.body).toContain('made-by-alice');
  });

  it('logs out with the CSRF token: the cookie stops working at once', async () => {
    const s = await sessionOf('alice@example.com');
    const out = await cp.app.inject({
      method: 'POST',
      url: '/auth/logout',
      headers: { cookie: s.cookie, 'x-csrf-token': s.csrf },
    });
    expect(out.statusCode).toBe(204);
    expect(setCookies(out).get('minipaas_session')).toMatch(/Max-Age=0/);
    const gone = await cp.app.inject({ method: 'GET', url: '/auth/session', headers: { cookie: s.cookie } });
    expect(gone.statusCode).toBe(401);
    const page = await cp.app.inject({ method: 'GET', url: '/', headers: { cookie: s.cookie } });
    expect(page.body).toContain('YOUR cloud');
  });

  it('logs out from the signed-in page form', async () => {
    const s = await sessionOf('alice@example.com');
    const out = await cp.app.inject({
      method: 'POST',
      url: '/auth/logout',
      headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: `_csrf=${encodeURIComponent(s.csrf)}`,
    });
    expect(out.statusCode).toBe(303);
    expect(out.headers.location).toBe('/?login=logged-out');
    expect(
      (await cp.app.inject({ method: 'GET', url: '/auth/session', headers: { cookie: s.cookie } }))
        .statusCode,
    ).toBe(401);
  });

  it('ends the sessions of a user whose password changes or who is disabled', async () => {
    await addUser('frank', 'frank@example.com', { password: PASSWORD, role: 'viewer' });
    const first = await sessionOf('frank@example.com');
    const session = (cookie: string) =>
      cp.app.inject({ method: 'GET', url: '/auth/session', headers: { cookie } });
    expect((await session(first.cookie)).statusCode).toBe(200);
    const db = cp.ctx.store.db;
    await db
      .updateTable('users')
      .set({ password_hash: await hashPassword(PASSWORD) })
      .where('id', '=', 'frank')
      .execute();
    expect((await session(first.cookie)).statusCode).toBe(401);
    const second = await sessionOf('frank@example.com');
    await db.updateTable('users').set({ disabled: true }).where('id', '=', 'frank').execute();
    expect((await session(second.cookie)).statusCode).toBe(401);
    await db.updateTable('users').set({ disabled: false }).where('id', '=', 'frank').execute();
    expect((await session(second.cookie)).statusCode).toBe(401); // deleted, not just refused
  });

  it('ignores forged and malformed cookies', async () => {
    for (const cookie of [
      'minipaas_session=AAAA',
      `minipaas_session=${'A'.repeat(43)}`,
      'minipaas_session=%00%ff',
      'x'.repeat(20_000),
    ]) {
      const res = await cp.app.inject({ method: 'GET', url: '/auth/session', headers: { cookie } });
      expect(res.statusCode).toBe(401);
    }
  });
});

describe('GitHub login against the local stand-in', () => {
  it('maps a GitHub account to the user with its verified email and starts a session', async () => {
    const browser = new ScriptedBrowser();
    const { last, hops } = await browser.follow(`${base}/auth/github`);
    expect(hops.some((h) => h.startsWith(gh.authorizeUrl))).toBe(true);
    expect(last.status).toBe(200);
    const html = await last.text();
    expect(html).toContain('Signed in as octo (OCTO@example.com).');
    expect(gh.refusals).toEqual([]);
  });

  it('refuses an account whose emails match no user, and one whose email is not verified', async () => {
    gh.account = {
      id: 1002,
      login: 'stranger',
      emails: [{ email: 'stranger@example.com', verified: true, primary: true }],
    };
    const a = await new ScriptedBrowser().follow(`${base}/auth/github`);
    expect(a.hops.at(-1)).toBe(`${base}/?login=no-user`);
    gh.account = {
      id: 1003,
      login: 'spoof',
      emails: [{ email: 'alice@example.com', verified: false, primary: true }],
    };
    const b = await new ScriptedBrowser().follow(`${base}/auth/github`);
    expect(b.hops.at(-1)).toBe(`${base}/?login=no-user`);
    expect(await b.last.text()).toContain('No miniPaaS user matches this account.');
  });

  it('links a first login to the invited user, once', async () => {
    const inv = await cp.app.inject({
      method: 'POST',
      url: '/auth/invites',
      headers: admin,
      payload: { userId: 'carol' },
    });
    expect(inv.statusCode).toBe(201);
    const { code, urls } = inv.json<{ code: string; urls: string[] }>();
    expect(urls.some((u) => u.endsWith(`/auth/github?invite=${code}`))).toBe(true);
    expect(urls.some((u) => u.endsWith(`/auth/oidc/sso?invite=${code}`))).toBe(true);
    gh.account = {
      id: 1004,
      login: 'carol-gh',
      emails: [{ email: 'carol@home.example', verified: true, primary: true }],
    };
    const first = await new ScriptedBrowser().follow(`${base}/auth/github?invite=${code}`);
    expect(await first.last.text()).toContain('Signed in as carol');
    // The link stays: the same GitHub account logs in again without the invite.
    const again = await new ScriptedBrowser().follow(`${base}/auth/github`);
    expect(await again.last.text()).toContain('Signed in as carol');
    // The code is spent: another account cannot use it.
    gh.account = {
      id: 1005,
      login: 'other',
      emails: [{ email: 'other@home.example', verified: true, primary: true }],
    };
    const reused = await new ScriptedBrowser().follow(`${base}/auth/github?invite=${code}`);
    expect(reused.hops.at(-1)).toBe(`${base}/?login=no-user`);
  });

  it('needs user:manage for invites, and a real user', async () => {
    const s = await sessionOf('bob@example.com');
    const denied = await cp.app.inject({
      method: 'POST',
      url: '/auth/invites',
      headers: { cookie: s.cookie, 'x-csrf-token': s.csrf },
      payload: { userId: 'bob' },
    });
    expect([401, 403]).toContain(denied.statusCode);
    const missing = await cp.app.inject({
      method: 'POST',
      url: '/auth/invites',
      headers: admin,
      payload: { userId: 'nobody' },
    });
    expect(missing.statusCode).toBe(404);
  });

  it('sends a callback without its flow cookie, or with another state, back to the landing page', async () => {
    const noCookie = await new ScriptedBrowser().follow(`${base}/auth/github/callback?code=abc&state=xyz`);
    expect(noCookie.hops.at(-1)).toBe(`${base}/?login=expired`);
    gh.account = {
      id: 1001,
      login: 'octo',
      emails: [{ email: 'octo@example.com', verified: true, primary: true }],
    };
    const browser = new ScriptedBrowser();
    const started = await browser.request(`${base}/auth/github`);
    const at = new URL(started.headers.get('location') as string);
    const back = await browser.request(at.toString());
    const callback = new URL(back.headers.get('location') as string);
    callback.searchParams.set('state', 'forged');
    const res = await browser.follow(callback.toString());
    expect(res.hops.at(-1)).toBe(`${base}/?login=provider`);
    expect(browser.cookie(base, 'minipaas_session')).toBeUndefined();
  });
});

describe('OIDC login against oidc-provider', () => {
  it('maps the OIDC subject to the user with its verified email', async () => {
    const browser = new ScriptedBrowser();
    const { last, hops } = await browser.follow(`${base}/auth/oidc/sso`);
    expect(hops.some((h) => h.startsWith(op.issuer))).toBe(true);
    expect(await last.text()).toContain('Signed in as dana (dana@example.com).');
    const session = await browser.request(`${base}/auth/session`);
    expect(((await session.json()) as { user: { id: string } }).user.id).toBe('dana');
  });

  it('does not match on an email the provider has not verified', async () => {
    op.current = { sub: 'sub-eve', email: 'alice@example.com', emailVerified: false };
    const { hops } = await new ScriptedBrowser().follow(`${base}/auth/oidc/sso`);
    expect(hops.at(-1)).toBe(`${base}/?login=no-user`);
  });

  it('answers unknown and hostile provider names without starting a flow', async () => {
    for (const [url, status] of [
      ['/auth/oidc/nope', 404],
      ['/auth/oidc/__proto__', 400],
      ['/auth/oidc/constructor', 404],
      ['/auth/oidc/%2e%2e', 401], // no route matches: authentication is required (fail closed)
      ['/auth/github?invite=<x>', 400],
    ] as const) {
      const res = await cp.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(status);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
  });
});
