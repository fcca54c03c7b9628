/**
 * A login provider outside MiniPaaS (GitHub, an OpenID Connect provider): it sends the browser to the
 * provider and turns the provider's answer into an external identity. What the identity maps to (a
 * MiniPaaS user) is decided elsewhere (identity-mapper.ts).
 */

/** Who the provider says logged in. */
export interface ExternalIdentity {
  /** `github`, or `oidc:NAME`. */
  provider: string;
  /** The provider's stable id of the account (GitHub's numeric id, OIDC `sub`). */
  subject: string;
  /** A display name (GitHub login, OIDC `name` or `preferred_username`), when the provider gives one. */
  name: string | null;
  /** Email addresses the provider says are verified (primary first); unverified ones are left out. */
  verifiedEmails: string[];
}

/** What the browser must bring back to the callback: kept in a short-lived HttpOnly cookie. */
export interface LoginFlow {
  provider: string;
  state: string;
  nonce: string;
  verifier: string;
  /** Invite code the login was started with, if any. */
  invite?: string;
}

export interface ExternalLoginProvider {
  /** `github`, or `oidc:NAME`. */
  readonly id: string;
  /** Button text on the landing page. */
  readonly label: string;
  /** The provider's authorization URL for this login, and the flow state the callback checks. */
  start(redirectUri: string): Promise<{ url: URL; flow: LoginFlow }>;
  /**
   * Exchanges the callback's code (PKCE and state checked) and reads the account.
   * @param callbackUrl the callback URL as the provider called it (redirect URI + its query)
   */
  finish(callbackUrl: URL, flow: LoginFlow): Promise<ExternalIdentity>;
}

/** True for http URLs on the loopback interface (local providers in tests), the only http allowed. */
export function isLoopbackHttp(url: string): boolean {
  const u = new URL(url);
  return u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
}
