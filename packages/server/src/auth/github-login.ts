/**
 * "Login with GitHub" (seed 001): GitHub's OAuth web flow with `openid-client` as a plain OAuth 2.0
 * client (authorize, then access_token with PKCE and state), then GitHub's REST API for the account
 * (`GET /user`) and its verified addresses (`GET /user/emails`). The endpoints are configurable
 * (GitHub Enterprise; a local stand-in in tests).
 */
import type * as OAuth from 'openid-client';

/** openid-client (~9 MiB) loads on the first GitHub login, not when minipaasd starts. */
const loadOAuth = (): Promise<typeof OAuth> => import('openid-client');

import {
  type ExternalIdentity,
  type ExternalLoginProvider,
  isLoopbackHttp,
  type LoginFlow,
} from './external-login.ts';

export interface GithubLoginOptions {
  clientId: string;
  clientSecret: string;
  /** `https://github.com/login/oauth/authorize` */
  authorizeUrl: string;
  /** `https://github.com/login/oauth/access_token` */
  tokenUrl: string;
  /** `https://api.github.com` (no trailing slash) */
  apiUrl: string;
  /** Milliseconds a request to GitHub may take (default 10 000). */
  timeoutMs?: number;
}

/** Largest answer read from GitHub's API. */
const MAX_API_BYTES = 1024 * 1024;

export class GithubLogin implements ExternalLoginProvider {
  readonly id = 'github';
  readonly label = 'Login with GitHub';
  private readonly opts: GithubLoginOptions;
  private configPromise: Promise<{ oauth: typeof OAuth; config: OAuth.Configuration }> | undefined;

  constructor(opts: GithubLoginOptions) {
    this.opts = opts;
  }

  private setup(): Promise<{ oauth: typeof OAuth; config: OAuth.Configuration }> {
    this.configPromise ??= loadOAuth().then((oauth) => {
      const opts = this.opts;
      const config = new oauth.Configuration(
        {
          issuer: new URL(opts.authorizeUrl).origin,
          authorization_endpoint: opts.authorizeUrl,
          token_endpoint: opts.tokenUrl,
        },
        opts.clientId,
        opts.clientSecret,
      );
      config.timeout = Math.ceil((opts.timeoutMs ?? 10_000) / 1000);
      if ([opts.authorizeUrl, opts.tokenUrl].some(isLoopbackHttp)) oauth.allowInsecureRequests(config);
      return { oauth, config };
    });
    return this.configPromise;
  }

  async start(redirectUri: string): Promise<{ url: URL; flow: LoginFlow }> {
    const { oauth, config } = await this.setup();
    const verifier = oauth.randomPKCECodeVerifier();
    const flow: LoginFlow = { provider: this.id, state: oauth.randomState(), nonce: '', verifier };
    const url = oauth.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'read:user user:email',
      state: flow.state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      allow_signup: 'false',
    });
    return { url, flow };
  }

  async finish(callbackUrl: URL, flow: LoginFlow): Promise<ExternalIdentity> {
    const { oauth, config } = await this.setup();
    const tokens = await oauth.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
    });
    const user = await this.api<{ id?: unknown; login?: unknown; name?: unknown }>(
      '/user',
      tokens.access_token,
    );
    if (typeof user.id !== 'number' && typeof user.id !== 'string')
      throw new Error('GitHub /user answered without an id');
    const emails = await this.api<unknown>('/user/emails', tokens.access_token);
    if (!Array.isArray(emails)) throw new Error('GitHub /user/emails did not answer a list');
    const verified = emails
      .filter(
        (e): e is { email: string; verified: true; primary?: boolean } =>
          typeof e === 'object' && e !== null && typeof e.email === 'string' && e.verified === true,
      )
      .sort((a, b) => Number(b.primary === true) - Number(a.primary === true))
      .map((e) => e.email.toLowerCase());
    return {
      provider: this.id,
      subject: String(user.id),
      name: typeof user.login === 'string' ? user.login : typeof user.name === 'string' ? user.name : null,
      verifiedEmails: [...new Set(verified)],
    };
  }

  private async api<T>(path: string, accessToken: string): Promise<T> {
    const res = await fetch(`${this.opts.apiUrl}${path}`, {
      headers: {
        authorization: `Bearer ${accessToken}`,
        accept: 'application/vnd.github+json',
        'x-github-api-version': '2022-11-28',
        'user-agent': 'minipaas',
      },
      redirect: 'error',
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
    });
    const text = await res.text();
    if (text.length > MAX_API_BYTES)
      throw new Error(`GitHub ${path} answered more than ${MAX_API_BYTES} bytes`);
    if (!res.ok) throw new Error(`GitHub ${path} answered ${res.status}`);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new Error(`GitHub ${path} did not answer JSON`);
    }
  }
}
