/**
 * The external login clients against real servers: the OIDC client against `oidc-provider`, the GitHub
 * client against a local stand-in of GitHub's OAuth and REST endpoints. A scripted browser follows the
 * redirects; the client then checks state and PKCE and reads the account.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GithubStandIn, startGithubStandIn } from '../../../test/helpers/github-oauth-server.ts';
import { type OidcTestProvider, startOidcProvider } from '../../../test/helpers/oidc-server.ts';
import { ScriptedBrowser } from '../../../test/helpers/scripted-browser.ts';
import { GithubLogin } from '../src/auth/github-login.ts';
import { OidcLogin } from '../src/auth/oidc-login.ts';

const REDIRECT = 'http://127.0.0.1:9/auth/oidc/test/callback';
const GH_REDIRECT = 'http://127.0.0.1:9/auth/github/callback';

describe('OIDC login against oidc-provider', () => {
  let op: OidcTestProvider;
  let client: OidcLogin;
  beforeAll(async () => {
    op = await startOidcProvider({
      clientId: 'minipaas',
      clientSecret: 'a-long-client-secret-for-tests-only',
      redirectUris: [REDIRECT],
      account: { sub: 'u-1', email: 'Alice@Example.com', emailVerified: true, name: 'Alice' },
    });
    client = new OidcLogin({
      name: 'test',
      issuer: op.issuer,
      clientId: 'minipaas',
      clientSecret: 'a-long-client-secret-for-tests-only',
      scopes: 'openid email profile',
    });
  });
  afterAll(async () => {
    await op?.close();
  });

  it('runs the code flow with PKCE and returns the verified email', async () => {
    const { url, flow } = await client.start(REDIRECT);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    const browser = new ScriptedBrowser();
    const { stoppedAt } = await browser.follow(url.toString(), REDIRECT);
    expect(stoppedAt).not.toBeNull();
    const identity = await client.finish(stoppedAt as URL, flow);
    expect(identity).toEqual({
      provider: 'oidc:test',
      subject: 'u-1',
      name: 'Alice',
      verifiedEmails: ['alice@example.com'],
    });
  });

  it('leaves out an email the provider has not verified', async () => {
    op.current = { sub: 'u-2', email: 'bob@example.com', emailVerified: false };
    const { url, flow } = await client.start(REDIRECT);
    const { stoppedAt } = await new ScriptedBrowser().follow(url.toString(), REDIRECT);
    const identity = await client.finish(stoppedAt as URL, flow);
    expect(identity.subject).toBe('u-2');
    expect(identity.verifiedEmails).toEqual([]);
  });

  it('refuses a callback whose state belongs to another login', async () => {
    const first = await client.start(REDIRECT);
    const second = await client.start(REDIRECT);
    const { stoppedAt } = await new ScriptedBrowser().follow(first.url.toString(), REDIRECT);
    await expect(client.finish(stoppedAt as URL, second.flow)).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/"state"/) },
    });
  });

  it('refuses a code replayed a second time', async () => {
    const { url, flow } = await client.start(REDIRECT);
    const { stoppedAt } = await new ScriptedBrowser().follow(url.toString(), REDIRECT);
    await client.finish(stoppedAt as URL, flow);
    await expect(client.finish(stoppedAt as URL, flow)).rejects.toThrow();
  });

  it('fails clearly when the issuer does not answer', async () => {
    const down = new OidcLogin({
      name: 'down',
      issuer: 'http://127.0.0.1:9/',
      clientId: 'x',
      scopes: 'openid email',
    });
    await expect(down.start(REDIRECT)).rejects.toThrow(/OIDC discovery at http:\/\/127\.0\.0\.1:9\/ failed/);
  });
});

describe('GitHub login against a local stand-in', () => {
  let gh: GithubStandIn;
  let client: GithubLogin;
  beforeAll(async () => {
    gh = await startGithubStandIn({
      clientId: 'Iv1.test',
      clientSecret: 'gh-secret',
      account: {
        id: 4242,
        login: 'octo',
        emails: [
          { email: 'unverified@example.com', verified: false, primary: false },
          { email: 'second@example.com', verified: true, primary: false },
          { email: 'Octo@Example.com', verified: true, primary: true },
        ],
      },
    });
    client = new GithubLogin({
      clientId: 'Iv1.test',
      clientSecret: 'gh-secret',
      authorizeUrl: gh.authorizeUrl,
      tokenUrl: gh.tokenUrl,
      apiUrl: gh.apiUrl,
    });
  });
  afterAll(async () => {
    await gh?.close();
  });

  it('exchanges the code (state and PKCE checked) and reads /user and /user/emails', async () => {
    const { url, flow } = await client.start(GH_REDIRECT);
    expect(url.origin).toBe(gh.url);
    const { stoppedAt } = await new ScriptedBrowser().follow(url.toString(), GH_REDIRECT);
    const identity = await client.finish(stoppedAt as URL, flow);
    expect(identity).toEqual({
      provider: 'github',
      subject: '4242',
      name: 'octo',
      verifiedEmails: ['octo@example.com', 'second@example.com'],
    });
    expect(gh.refusals).toEqual([]);
  });

  it('refuses a callback with a state it did not issue', async () => {
    const { url, flow } = await client.start(GH_REDIRECT);
    const { stoppedAt } = await new ScriptedBrowser().follow(url.toString(), GH_REDIRECT);
    const forged = new URL(stoppedAt as URL);
    forged.searchParams.set('state', 'attacker-state');
    await expect(client.finish(forged, flow)).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/"state"/) },
    });
  });

  it('fails when GitHub refuses the code (a wrong PKCE verifier)', async () => {
    const { url, flow } = await client.start(GH_REDIRECT);
    const { stoppedAt } = await new ScriptedBrowser().follow(url.toString(), GH_REDIRECT);
    await expect(client.finish(stoppedAt as URL, { ...flow, verifier: 'x'.repeat(43) })).rejects.toThrow();
    expect(gh.refusals).toContain('bad_verification_code (PKCE)');
  });

  it('fails with the wrong client secret', async () => {
    const wrong = new GithubLogin({
      clientId: 'Iv1.test',
      clientSecret: 'not-the-secret',
      authorizeUrl: gh.authorizeUrl,
      tokenUrl: gh.tokenUrl,
      apiUrl: gh.apiUrl,
    });
    const { url, flow } = await wrong.start(GH_REDIRECT);
    const { stoppedAt } = await new ScriptedBrowser().follow(url.toString(), GH_REDIRECT);
    await expect(wrong.finish(stoppedAt as URL, flow)).rejects.toThrow();
  });
});
