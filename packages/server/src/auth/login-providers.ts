/** The external login providers and login options the configuration turns on (`config.auth`). */
import type { MinipaasConfig } from '@minipaas/core';
import type { ExternalLoginProvider } from './external-login.ts';
import { GithubLogin } from './github-login.ts';
import type { LoginOptions } from './landing-page.ts';
import { OidcLogin } from './oidc-login.ts';

/** Providers by id (`github`, `oidc:NAME`), built once at start. */
export function loginProviders(config: MinipaasConfig): Map<string, ExternalLoginProvider> {
  const providers = new Map<string, ExternalLoginProvider>();
  const gh = config.auth.github;
  if (gh.clientId && gh.clientSecret)
    providers.set(
      'github',
      new GithubLogin({
        clientId: gh.clientId,
        clientSecret: gh.clientSecret,
        authorizeUrl: gh.authorizeUrl,
        tokenUrl: gh.tokenUrl,
        apiUrl: gh.apiUrl,
      }),
    );
  for (const [name, p] of Object.entries(config.auth.oidc))
    providers.set(
      `oidc:${name}`,
      new OidcLogin({
        name,
        issuer: p.issuer,
        clientId: p.clientId,
        clientSecret: p.clientSecret,
        label: p.label,
        scopes: p.scopes,
      }),
    );
  return providers;
}

/** What the landing page offers. */
export function loginOptions(
  config: MinipaasConfig,
  providers: ReadonlyMap<string, ExternalLoginProvider>,
): LoginOptions {
  return {
    password: config.auth.passwordLogin === 'on',
    github: providers.has('github'),
    oidc: [...providers.values()]
      .filter((p) => p.id.startsWith('oidc:'))
      .map((p) => ({ name: p.id.slice('oidc:'.length), label: p.label })),
  };
}
