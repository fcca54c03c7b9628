/**
 * The landing page and login in a real browser: Debian's chromium driven by playwright-core against
 * the real platform (`minipaas up`), with "Login with GitHub" going through the local GitHub stand-in.
 * Checks the seed 001 §2 look (grey page, centred white box with a black border, Courier New, the login
 * button top right, the three sentences, no script, no animation), password login through the form,
 * the signed-in page, logout, and the GitHub flow. Saves screenshots to docs/.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../packages/server/src/auth/password-hash.ts';
import { type GithubStandIn, startGithubStandIn } from '../helpers/github-oauth-server.ts';
import { type OidcTestProvider, startOidcProvider } from '../helpers/oidc-server.ts';
import { type Platform, ROOT, startPlatform } from '../helpers/platform.ts';
import { createTestDatabase } from '../helpers/postgres.ts';
import { freePort } from '../helpers/postgres-server.ts';

const CHROMIUM = '/usr/bin/chromium';

interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

interface Look {
  background: string;
  font: string;
  containerBg: string;
  containerBorder: string;
  container: Rect;
  button: Rect;
  github: Rect;
  mainBox: Rect;
  viewport: number;
  scripts: number;
  animations: number;
  text: string;
}
const PASSWORD = 'a browser password';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) throw new Error(`CI needs ${CHROMIUM} (.ci/setup.d/50-chromium.sh)`);

describe.skipIf(!haveChromium)('landing page in chromium', () => {
  let platform: Platform;
  let gh: GithubStandIn;
  let op: OidcTestProvider;
  let browser: Browser;
  let dropDb: () => Promise<void> = async () => {};

  beforeAll(async () => {
    gh = await startGithubStandIn({
      clientId: 'gh-browser',
      clientSecret: 'gh-browser-secret',
      account: {
        id: 77,
        login: 'octo',
        emails: [{ email: 'octo@example.com', verified: true, primary: true }],
      },
    });
    const db = await createTestDatabase('landing');
    dropDb = db.drop;
    // The provider starts once the platform's port is known (its client lists the callback URL); the
    // platform discovers the issuer on the first login.
    const oidcPort = await freePort();
    platform = await startPlatform({
      DATABASE_URL: db.url,
      MINIPAAS_OIDC_ISSUER: `http://127.0.0.1:${oidcPort}`,
      MINIPAAS_OIDC_CLIENT_ID: 'minipaas-browser',
      MINIPAAS_OIDC_CLIENT_SECRET: 'oidc-browser-secret',
      MINIPAAS_OIDC_LABEL: 'Login with Corp SSO',
      MINIPAAS_GITHUB_CLIENT_ID: 'gh-browser',
      MINIPAAS_GITHUB_CLIENT_SECRET: 'gh-browser-secret',
      MINIPAAS_GITHUB_AUTHORIZE_URL: gh.authorizeUrl,
      MINIPAAS_GITHUB_TOKEN_URL: gh.tokenUrl,
      MINIPAAS_GITHUB_API_URL: gh.apiUrl,
    });
    op = await startOidcProvider({
      clientId: 'minipaas-browser',
      clientSecret: 'oidc-browser-secret',
      redirectUris: [`${platform.apiUrl}/auth/oidc/sso/callback`],
      account: { sub: 'corp-ada', email: 'ada@example.com', emailVerified: true },
      port: oidcPort,
    });
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      for (const [id, email, password] of [
        ['ada', 'ada@example.com', await hashPassword(PASSWORD)],
        ['octo', 'octo@example.com', null],
      ]) {
        await client.query('INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $1, $3)', [
          id,
          email,
          password,
        ]);
        await client.query(
          "INSERT INTO team_members (team_id, user_id, role) VALUES ('default', $1, 'developer')",
          [id],
        );
      }
    } finally {
      await client.end();
    }
    expect((await platform.api('POST', '/api/v1/apps', { name: 'hello' })).status).toBe(201);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
    await gh?.close();
    await op?.close();
    await dropDb();
  });

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    return context.newPage();
  }

  it('shows the early-2000s landing page to visitors', async () => {
    const page = await newPage();
    const res = await page.goto(`${platform.apiUrl}/`);
    expect(res?.status()).toBe(200);
    // Runs in the page (a string: this project's TypeScript has no DOM types).
    const look = await page.evaluate<Look>(`(() => {
      const css = (sel) => getComputedStyle(document.querySelector(sel));
      const box = (sel) => document.querySelector(sel).getBoundingClientRect().toJSON();
      const c = css('.container');
      return {
        background: css('body').backgroundColor,
        font: css('body').fontFamily,
        containerBg: c.backgroundColor,
        containerBorder: c.borderTopWidth + ' ' + c.borderTopStyle + ' ' + c.borderTopColor,
        container: box('.container'),
        button: box('.header a:last-child'),
        github: box('#login-github'),
        mainBox: box('.main-box'),
        viewport: window.innerWidth,
        scripts: document.scripts.length,
        animations: document.getAnimations().length,
        text: document.body.innerText,
      };
    })()`);
    expect(look.background).toBe('rgb(192, 192, 192)');
    expect(look.font).toContain('Courier New');
    expect(look.containerBg).toBe('rgb(255, 255, 255)');
    expect(look.containerBorder).toBe('2px solid rgb(0, 0, 0)');
    // Centred: equal margins left and right.
    expect(
      Math.abs(look.container.x - (look.viewport - look.container.x - look.container.width)),
    ).toBeLessThan(2);
    // The login button sits top right: above the main box, against the container's right edge.
    expect(look.button.y + look.button.height).toBeLessThanOrEqual(look.mainBox.y);
    expect(look.github.y + look.github.height).toBeLessThanOrEqual(look.mainBox.y);
    expect(look.container.x + look.container.width - (look.button.x + look.button.width)).toBeLessThan(30);
    expect(look.scripts).toBe(0);
    expect(look.animations).toBe(0);
    for (const s of [
      'Deploy applications from GitHub repositories to Docker containers.',
      'Automatic builds. Environment variables. Live logs. Local or remote.',
      'Self-hosted platform-as-a-service with minimal dependencies.',
    ])
      expect(look.text).toContain(s);
    await page.screenshot({ path: join(ROOT, 'docs', 'landing-page.png'), fullPage: true });
    await page.context().close();
  });

  it('logs in with the password form, shows the signed-in page, and logs out', async () => {
    const page = await newPage();
    await page.goto(`${platform.apiUrl}/`);
    await page.click('#login-password');
    await page.fill('#login-name', 'ada@example.com');
    await page.fill('#login-pass', PASSWORD);
    await Promise.all([page.waitForURL(`${platform.apiUrl}/`), page.click('#login button[type=submit]')]);
    expect(await page.textContent('#whoami')).toContain('Signed in as ada (ada@example.com).');
    expect(await page.textContent('#teams')).toContain('developer');
    expect(await page.textContent('#apps')).toContain('hello');
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'minipaas_session');
    expect(session?.httpOnly).toBe(true);
    expect(session?.sameSite).toBe('Lax');
    // Scripts in the page cannot read the session cookie.
    expect(await page.evaluate<string>('document.cookie')).not.toContain('minipaas_session');
    await page.screenshot({ path: join(ROOT, 'docs', 'signed-in-page.png'), fullPage: true });
    await Promise.all([page.waitForURL(/login=logged-out/), page.click('#logout')]);
    expect(await page.textContent('#message')).toContain('You are logged out.');
    await page.goto(`${platform.apiUrl}/`);
    expect(await page.locator('#whoami').count()).toBe(0);
    await page.context().close();
  });

  it('shows a wrong password on the landing page', async () => {
    const page = await newPage();
    await page.goto(`${platform.apiUrl}/#login`);
    await page.fill('#login-name', 'ada@example.com');
    await page.fill('#login-pass', 'wrong');
    await Promise.all([page.waitForURL(/login=failed/), page.click('#login button[type=submit]')]);
    expect(await page.textContent('#message')).toContain('Wrong email or password.');
    await page.context().close();
  });

  it('logs in with GitHub through the stand-in', async () => {
    const page = await newPage();
    await page.goto(`${platform.apiUrl}/`);
    await Promise.all([page.waitForURL(`${platform.apiUrl}/`), page.click('#login-github')]);
    expect(await page.textContent('#whoami')).toContain('Signed in as octo (octo@example.com).');
    expect(gh.refusals).toEqual([]);
    await page.context().close();
  });

  it('logs in with the OIDC provider', async () => {
    const page = await newPage();
    await page.goto(`${platform.apiUrl}/`);
    expect(await page.textContent('#login-oidc-sso')).toBe('Login with Corp SSO');
    await Promise.all([page.waitForURL(`${platform.apiUrl}/`), page.click('#login-oidc-sso')]);
    expect(await page.textContent('#whoami')).toContain('Signed in as ada (ada@example.com).');
    await page.context().close();
  });
});
