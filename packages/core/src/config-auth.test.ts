import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';

const HOME = '/tmp/mp-config-auth';

describe('auth settings', () => {
  it('has safe defaults: password login on, no providers', async () => {
    const c = await loadConfig({ MINIPAAS_HOME: HOME });
    expect(c.auth.passwordLogin).toBe('on');
    expect(c.auth.loginMaxFailures).toBe(20);
    expect(c.auth.github.clientId).toBeUndefined();
    expect(c.auth.oidc).toEqual({});
    expect(c.auth.secureCookies).toBe('auto');
  });

  it('reads GitHub and one OIDC provider from the environment', async () => {
    const c = await loadConfig({
      MINIPAAS_HOME: HOME,
      MINIPAAS_PUBLIC_URL: 'https://paas.example.com/',
      MINIPAAS_GITHUB_CLIENT_ID: 'id',
      MINIPAAS_GITHUB_CLIENT_SECRET: 'secret',
      MINIPAAS_OIDC_ISSUER: 'https://sso.example.com/realms/x',
      MINIPAAS_OIDC_CLIENT_ID: 'minipaas',
    });
    expect(c.auth.publicUrl).toBe('https://paas.example.com');
    expect(c.auth.github.authorizeUrl).toBe('https://github.com/login/oauth/authorize');
    expect(c.auth.oidc.sso?.issuer).toBe('https://sso.example.com/realms/x');
    expect(c.auth.oidc.sso?.scopes).toBe('openid email profile');
  });

  it('refuses half a GitHub app, plain-http providers off loopback, and bad provider names', async () => {
    await expect(loadConfig({ MINIPAAS_HOME: HOME, MINIPAAS_GITHUB_CLIENT_ID: 'id' })).rejects.toThrow(
      /auth\.github: set both clientId and clientSecret/,
    );
    await expect(
      loadConfig({
        MINIPAAS_HOME: HOME,
        MINIPAAS_OIDC_ISSUER: 'http://sso.example.com',
        MINIPAAS_OIDC_CLIENT_ID: 'x',
      }),
    ).rejects.toThrow(/auth\.oidc\.sso\.issuer: must be https/);
    await expect(
      loadConfig({ MINIPAAS_HOME: HOME, MINIPAAS_GITHUB_TOKEN_URL: 'http://127.0.0.1.evil.example/token' }),
    ).rejects.toThrow(/must be https/);
    await expect(
      loadConfig({
        MINIPAAS_HOME: HOME,
        MINIPAAS_OIDC_ISSUER: 'http://127.0.0.1:9000',
        MINIPAAS_OIDC_CLIENT_ID: 'x',
      }),
    ).resolves.toBeTruthy();
    await expect(loadConfig({ MINIPAAS_HOME: HOME, MINIPAAS_OIDC_LABEL: 'x' })).rejects.toThrow(/issuer/);
    await expect(loadConfig({ MINIPAAS_HOME: HOME, MINIPAAS_PASSWORD_LOGIN: 'maybe' })).rejects.toThrow(
      /auth\.passwordLogin/,
    );
    await expect(loadConfig({ MINIPAAS_HOME: HOME, MINIPAAS_SESSION_TTL_MS: '10' })).rejects.toThrow(
      /auth\.sessionTtlMs/,
    );
  });

  it('takes OIDC providers by name from the config file, never a prototype or bad name', async () => {
    const home = mkdtempSync(join(tmpdir(), 'mp-cfg-auth-'));
    const provider = { issuer: 'https://id.example.com', clientId: 'c', label: 'Login with Example' };
    writeFileSync(join(home, 'minipaas.config.json'), JSON.stringify({ auth: { oidc: { corp: provider } } }));
    const c = await loadConfig({ MINIPAAS_HOME: home });
    expect(Object.keys(c.auth.oidc)).toEqual(['corp']);
    writeFileSync(
      join(home, 'minipaas.config.json'),
      `{"auth":{"oidc":{"__proto__":${JSON.stringify(provider)}}}}`,
    );
    // zod drops the key: no provider, and nothing reaches Object.prototype.
    const hostile = await loadConfig({ MINIPAAS_HOME: home });
    expect(Object.keys(hostile.auth.oidc)).toEqual([]);
    expect(Object.getPrototypeOf(hostile.auth.oidc)).toBe(Object.prototype);
    expect((Object.prototype as Record<string, unknown>).issuer).toBeUndefined();
    writeFileSync(
      join(home, 'minipaas.config.json'),
      JSON.stringify({ auth: { oidc: { 'Bad Name': provider } } }),
    );
    await expect(loadConfig({ MINIPAAS_HOME: home })).rejects.toThrow(/auth\.oidc\.Bad Name: Invalid key/);
  });
});
