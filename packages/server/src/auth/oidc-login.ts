/**
 * Login through a generic OpenID Connect provider (`auth.oidc.NAME`), with `openid-client`: discovery
 * from the issuer, authorization code flow with PKCE (S256), state and nonce, ID token validated by the
 * library; the email comes from the ID token or, when it is not there, from the UserInfo endpoint, and
 * counts only with `email_verified: true`.
 */
import type * as OIDC from 'openid-client';

/** openid-client (~9 MiB) loads on the first OIDC login, not when minipaasd starts. */
const loadOidc = (): Promise<typeof OIDC> => import('openid-client');

import {
  type ExternalIdentity,
  type ExternalLoginProvider,
  isLoopbackHttp,
  type LoginFlow,
} from './external-login.ts';

export interface OidcLoginOptions {
  /** The provider's name in the configuration (`/auth/oidc/NAME`). */
  name: string;
  issuer: string;
  clientId: string;
  clientSecret?: string | undefined;
  label?: string | undefined;
  /** Space separated scopes. */
  scopes: string;
  /** Seconds an HTTP request to the provider may take (default 10). */
  timeoutSeconds?: number;
}

export class OidcLogin implements ExternalLoginProvider {
  readonly id: string;
  readonly label: string;
  private readonly opts: OidcLoginOptions;
  private config: Promise<OIDC.Configuration> | undefined;

  constructor(opts: OidcLoginOptions) {
    this.opts = opts;
    this.id = `oidc:${opts.name}`;
    this.label = opts.label ?? `Login with ${opts.name}`;
  }

  /** Discovery runs on first use and is kept; a failed discovery is tried again on the next login. */
  private configuration(): Promise<OIDC.Configuration> {
    if (!this.config) {
      const { issuer, clientId, clientSecret } = this.opts;
      this.config = loadOidc()
        .then((oidc) =>
          oidc.discovery(new URL(issuer), clientId, clientSecret, undefined, {
            execute: isLoopbackHttp(issuer) ? [oidc.allowInsecureRequests] : [],
            timeout: this.opts.timeoutSeconds ?? 10,
          }),
        )
        .catch((err: unknown) => {
          this.config = undefined;
          throw new Error(`OIDC discovery at ${issuer} failed: ${(err as Error).message}`, { cause: err });
        });
    }
    return this.config;
  }

  async start(redirectUri: string): Promise<{ url: URL; flow: LoginFlow }> {
    const config = await this.configuration();
    const oidc = await loadOidc();
    const verifier = oidc.randomPKCECodeVerifier();
    const flow: LoginFlow = {
      provider: this.id,
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier,
    };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.opts.scopes,
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: flow.state,
      nonce: flow.nonce,
    });
    return { url, flow };
  }

  async finish(callbackUrl: URL, flow: LoginFlow): Promise<ExternalIdentity> {
    const config = await this.configuration();
    const oidc = await loadOidc();
    const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
      expectedNonce: flow.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    if (!claims) throw new Error('the provider returned no ID token');
    let info: Record<string, unknown> = claims;
    if (typeof claims.email !== 'string')
      info = { ...(await oidc.fetchUserInfo(config, tokens.access_token, claims.sub)), ...claims };
    const email = typeof info.email === 'string' ? info.email.toLowerCase() : null;
    const name =
      typeof info.preferred_username === 'string'
        ? info.preferred_username
        : typeof info.name === 'string'
          ? info.name
          : null;
    return {
      provider: this.id,
      subject: claims.sub,
      name,
      verifiedEmails: email && info.email_verified === true ? [email] : [],
    };
  }
}
