/**
 * Where secret env values live (docs/security.md, ADR 0010 and 0011). The app's `env` map (and every
 * release's `config_env` snapshot) keeps what {@link SecretStore.put} returns: a **reference**, never the
 * plaintext. For the built-in store the reference is the value sealed under the master key ring; for
 * Vault it names a KV v2 path and version. {@link SecretStore.get} turns a reference back into the value.
 *
 * A reference is bound to its app and variable name: a reference copied to another app or name does not
 * open. Stores are told apart by the reference's prefix, so a platform that moves to Vault still opens the
 * values it sealed before (see {@link SecretStores}).
 */
import { MinipaasError } from '@minipaas/core';

/** The variable a secret belongs to. */
export interface SecretKey {
  /** The app's id (uuid). */
  appId: string;
  /** The env var name (`[A-Za-z_][A-Za-z0-9_]*`). */
  name: string;
}

/** A place secret values are kept: a few methods, like Kysely's `Driver`. */
export interface SecretStore {
  /** Short name for messages (`builtin`, `vault`). */
  readonly kind: string;
  /** Whether `value` is a reference this store made. */
  owns(value: string): boolean;
  /** Stores `value` as the secret `key` and returns the reference the env map keeps. */
  put(key: SecretKey, value: string): Promise<string>;
  /** The plaintext behind `ref` (a reference of this store made for `key`). */
  get(key: SecretKey, ref: string): Promise<string>;
  /** Forgets every stored version behind `refs` (the app is deleted). A no-op for self-contained refs. */
  forget(key: SecretKey, refs: readonly string[]): Promise<void>;
}

/**
 * The store new secrets go to, plus the others whose references may still be in env maps (the built-in
 * store always, so sealed values keep opening after a move to Vault).
 */
export class SecretStores {
  readonly current: SecretStore;
  readonly #all: SecretStore[];

  readonly #reserved: readonly string[];

  /**
   * @param current where new secrets go.
   * @param others stores whose references may still be in env maps.
   * @param reserved prefixes of references of stores this platform does not run now (e.g. `mpvault:`
   *   without Vault configured): such a value is still a secret, never taken as a config value.
   */
  constructor(current: SecretStore, others: readonly SecretStore[] = [], reserved: readonly string[] = []) {
    this.current = current;
    this.#all = [current, ...others.filter((s) => s !== current)];
    this.#reserved = reserved;
  }

  /** Whether `value` is a secret reference (of a known store, or with a reserved prefix). */
  isRef(value: string): boolean {
    return this.#all.some((s) => s.owns(value)) || this.#reserved.some((p) => value.startsWith(p));
  }

  /** The store that made `ref`, if any. */
  ownerOf(ref: string): SecretStore | undefined {
    return this.#all.find((s) => s.owns(ref));
  }

  put(key: SecretKey, value: string): Promise<string> {
    return this.current.put(key, value);
  }

  /** Opens `ref` with the store that made it. */
  async get(key: SecretKey, ref: string): Promise<string> {
    const store = this.ownerOf(ref);
    if (!store)
      throw new MinipaasError(
        'MINIPAAS_ERR_SECRET',
        this.isRef(ref)
          ? `${key.name} is kept in a secret store this platform is not configured for (secrets.store)`
          : `${key.name} is not a secret reference`,
      );
    return store.get(key, ref);
  }
}
