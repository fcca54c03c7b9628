/**
 * Where the CLI finds the API URL and token. Resolution order, for each of the two:
 * flags (`--url`, `--token`), env (`MINIPAAS_URL`, `MINIPAAS_TOKEN`), the saved login
 * (`~/.config/minipaas/credentials.json`), then the local platform (URL from the config, token from
 * `$MINIPAAS_HOME/admin-token` when readable). A saved or local token is only sent to the server it
 * belongs to, so `--url https://other` never leaks the local admin token.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { homePaths } from '@minipaas/core/paths';
import { CliError } from './cli-error.ts';
import { loadConfig } from './lazy-imports.ts';
import { apiUrlFor } from './platform.ts';

export { apiUrlFor };

export interface Credentials {
  url: string;
  token: string;
}

export type Source = 'flag' | 'env' | 'saved' | 'local' | 'none';

export interface Target {
  url: string;
  token: string | undefined;
  urlSource: Source;
  tokenSource: Source;
}

export interface ResolveInput {
  flags: { url?: string | undefined; token?: string | undefined };
  env: NodeJS.ProcessEnv;
  saved: Credentials | undefined;
  /** The local platform's URL and admin token; called only when needed. */
  local: () => Promise<{ url: string; token: string | undefined }>;
}

/** `~/.config/minipaas/credentials.json` (honours XDG_CONFIG_HOME). */
export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'minipaas', 'credentials.json');
}

/** Validates and normalises an API base URL (no trailing slash). */
export function normalizeUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw new CliError(`invalid API URL "${raw}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new CliError(`invalid API URL "${raw}": use http(s)`);
  return u.href.replace(/\/+$/, '');
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** True when two API URLs point at the same server (loopback spellings are equal). */
export function sameServer(a: string, b: string): boolean {
  const ua = new URL(a);
  const ub = new URL(b);
  const host = (u: URL) => (LOOPBACK.has(u.hostname) ? 'loopback' : u.hostname);
  const port = (u: URL) => u.port || (u.protocol === 'https:' ? '443' : '80');
  return (
    ua.protocol === ub.protocol &&
    host(ua) === host(ub) &&
    port(ua) === port(ub) &&
    ua.pathname === ub.pathname
  );
}

/** Resolves URL and token (see the module comment for the order). */
export async function resolveTarget(input: ResolveInput): Promise<Target> {
  const { flags, env, saved } = input;
  let local: { url: string; token: string | undefined } | undefined;
  const getLocal = async () => {
    local ??= await input.local();
    return local;
  };

  let url: string;
  let urlSource: Source;
  if (flags.url) [url, urlSource] = [normalizeUrl(flags.url), 'flag'];
  else if (env.MINIPAAS_URL) [url, urlSource] = [normalizeUrl(env.MINIPAAS_URL), 'env'];
  else if (saved) [url, urlSource] = [normalizeUrl(saved.url), 'saved'];
  else [url, urlSource] = [normalizeUrl((await getLocal()).url), 'local'];

  if (flags.token) return { url, token: flags.token, urlSource, tokenSource: 'flag' };
  if (env.MINIPAAS_TOKEN) return { url, token: env.MINIPAAS_TOKEN, urlSource, tokenSource: 'env' };
  if (saved && sameServer(saved.url, url))
    return { url, token: saved.token, urlSource, tokenSource: 'saved' };
  const loc = await getLocal();
  if (loc.token && sameServer(loc.url, url))
    return { url, token: loc.token, urlSource, tokenSource: 'local' };
  return { url, token: undefined, urlSource, tokenSource: 'none' };
}

/** Reads the saved login, or undefined when there is none. */
export function readCredentials(path: string): Credentials | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const data = JSON.parse(text) as Partial<Credentials>;
    if (typeof data.url === 'string' && typeof data.token === 'string')
      return { url: data.url, token: data.token };
  } catch {
    // fall through
  }
  throw new CliError(`saved login ${path} is not valid; run minipaas login again or delete the file`);
}

/** Saves the login with mode 0600 (directory 0700), atomically. */
export function saveCredentials(path: string, creds: Credentials): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ url: creds.url, token: creds.token }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** The local platform: API URL from the config, admin token from MINIPAAS_HOME when readable. */
export async function localTarget(
  env: NodeJS.ProcessEnv,
): Promise<{ url: string; token: string | undefined }> {
  const config = await loadConfig(env);
  let token: string | undefined;
  try {
    token = readFileSync(homePaths(config.home).adminToken, 'utf8').trim() || undefined;
  } catch {
    token = undefined;
  }
  return { url: apiUrlFor(config.api.host, config.api.port), token };
}
