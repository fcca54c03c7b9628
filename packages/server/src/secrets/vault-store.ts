/**
 * A {@link SecretStore} on HashiCorp Vault's KV secrets engine, version 2 (seed 002). Each secret env var
 * is the KV entry `<mount>/data/<prefix>/<app id>/<NAME>` holding `{"value": "..."}`; every `put` writes a
 * new version, and the env map keeps `mpvault:<mount>:<path>@<version>`, so a release snapshot names the
 * exact version it ran with and a rollback gets it back (while Vault keeps it: `max_versions`, 10 by
 * default). The platform never writes the value anywhere else.
 *
 * Endpoints used (Vault HTTP API, KV v2): `POST /v1/<mount>/data/<path>` (write, answers the version),
 * `GET /v1/<mount>/data/<path>?version=N` (read), `DELETE /v1/<mount>/metadata/<path>` (forget every
 * version). Authentication: `X-Vault-Token`, plus `X-Vault-Namespace` when set.
 */
import { MinipaasError } from '@minipaas/core';
import type { SecretKey, SecretStore } from './secret-store.ts';

/** How to reach Vault (config `secrets.vault`, docs/security.md). */
export interface VaultStoreOptions {
  /** Vault's address, e.g. `https://vault.internal:8200` (`MINIPAAS_VAULT_URL`). */
  url: string;
  /** A token allowed to create, read and delete under the prefix (`MINIPAAS_VAULT_TOKEN`). */
  token: string;
  /** Mount path of the KV v2 engine (default `secret`). */
  mount?: string;
  /** Path under the mount the platform's entries go below (default `minipaas`). */
  prefix?: string;
  /** Vault Enterprise namespace, sent as `X-Vault-Namespace`. */
  namespace?: string;
  /** Timeout of one request in milliseconds (default 10000). */
  timeoutMs?: number;
}

/** How every Vault reference starts. */
export const VAULT_REF_PREFIX = 'mpvault:';
const PREFIX = VAULT_REF_PREFIX;
const REF =
  /^mpvault:([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*):([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*)@([1-9][0-9]{0,9})$/;

interface ParsedRef {
  mount: string;
  path: string;
  version: number;
}

export class VaultSecretStore implements SecretStore {
  readonly kind = 'vault';
  readonly #url: string;
  readonly #token: string;
  readonly #mount: string;
  readonly #prefix: string;
  readonly #namespace: string | undefined;
  readonly #timeoutMs: number;

  constructor(opts: VaultStoreOptions) {
    const u = new URL(opts.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'the Vault URL must be http(s)');
    this.#url = u.origin + u.pathname.replace(/\/+$/, '');
    this.#token = opts.token;
    this.#mount = trimSlashes(opts.mount ?? 'secret');
    this.#prefix = trimSlashes(opts.prefix ?? 'minipaas');
    this.#namespace = opts.namespace;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  owns(value: string): boolean {
    return value.startsWith(PREFIX);
  }

  async put(key: SecretKey, value: string): Promise<string> {
    const path = `${this.#prefix}/${key.appId}/${key.name}`;
    const body = await this.#call('POST', this.#mount, `data/${path}`, { data: { value } });
    const version = (body as { data?: { version?: unknown } } | null)?.data?.version;
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
      throw new MinipaasError('MINIPAAS_ERR_SECRET_STORE', 'Vault did not answer the version it wrote');
    return `${PREFIX}${this.#mount}:${path}@${version}`;
  }

  async get(key: SecretKey, ref: string): Promise<string> {
    const r = parseRef(key, ref);
    const body = await this.#call('GET', r.mount, `data/${r.path}?version=${r.version}`);
    const value = (body as { data?: { data?: { value?: unknown } } } | null)?.data?.data?.value;
    if (body === null || typeof value !== 'string')
      throw new MinipaasError(
        'MINIPAAS_ERR_SECRET',
        `version ${r.version} of ${key.name} is not in Vault (deleted, destroyed or past max_versions)`,
      );
    return value;
  }

  async forget(key: SecretKey, refs: readonly string[]): Promise<void> {
    const seen = new Set<string>();
    for (const ref of refs) {
      const r = parseRef(key, ref);
      const id = `${r.mount}:${r.path}`;
      if (seen.has(id)) continue;
      seen.add(id);
      await this.#call('DELETE', r.mount, `metadata/${r.path}`);
    }
  }

  /** One Vault request; `null` for a 404. The token is never part of a message. */
  async #call(method: string, mount: string, rest: string, body?: unknown): Promise<unknown> {
    const url = `${this.#url}/v1/${mount}/${rest}`;
    const headers: Record<string, string> = { 'x-vault-token': this.#token };
    if (this.#namespace) headers['x-vault-namespace'] = this.#namespace;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        redirect: 'error',
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw new MinipaasError(
        'MINIPAAS_ERR_SECRET_STORE',
        `Vault at ${this.#url} is not reachable: ${(err as Error).cause ?? (err as Error).message}`,
      );
    }
    const text = await res.text();
    if (res.status === 404) return null;
    if (!res.ok) {
      let detail = '';
      try {
        const errors = (JSON.parse(text) as { errors?: unknown }).errors;
        if (Array.isArray(errors)) detail = `: ${errors.map(String).join('; ').slice(0, 300)}`;
      } catch {
        // Not JSON: the status says enough.
      }
      throw new MinipaasError(
        'MINIPAAS_ERR_SECRET_STORE',
        `Vault answered ${res.status} to ${method} ${mount}/${rest.split('?')[0]}${detail}`,
      );
    }
    if (text === '') return {};
    try {
      return JSON.parse(text);
    } catch {
      throw new MinipaasError(
        'MINIPAAS_ERR_SECRET_STORE',
        `Vault answered ${method} ${mount}/${rest} with no JSON`,
      );
    }
  }
}

function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '');
}

/** Parses a reference and checks it was made for `key` (the path ends in `/<app id>/<NAME>`). */
function parseRef(key: SecretKey, ref: string): ParsedRef {
  const m = REF.exec(ref);
  if (!m) throw new MinipaasError('MINIPAAS_ERR_SECRET', `${key.name} holds a malformed Vault reference`);
  const [, mount, path, version] = m as unknown as [string, string, string, string];
  if (
    `${mount}/${path}`.split('/').some((seg) => seg === '.' || seg === '..') ||
    !path.endsWith(`/${key.appId}/${key.name}`)
  )
    throw new MinipaasError(
      'MINIPAAS_ERR_SECRET',
      `the Vault reference in ${key.name} belongs to another variable`,
    );
  return { mount, path, version: Number(version) };
}
