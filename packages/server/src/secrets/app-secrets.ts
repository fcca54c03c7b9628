/**
 * Secret env vars (docs/security.md, ADR 0010, 0011). A secret lives in the app's `env` map (and in every
 * release's `config_env` snapshot, so a rollback restores it) as a reference of a {@link SecretStore}: a
 * value sealed by the {@link SecretBox} (built-in store) or a Vault KV v2 path and version, bound to the app
 * id and the variable's name; config vars stay plaintext. Values are opened only where the runtime spec is
 * built (minipaasd, the build worker) and where `?reveal=true` asks for them.
 */
import { type MinipaasConfig, MinipaasError, type RuntimeSpec, SecretBox } from '@minipaas/core';
import type { Kysely } from 'kysely';
import { resealGitSecrets } from '../git/git-secrets.ts';
import type { Database } from '../store/schema.ts';
import { BuiltinSecretStore, envContext } from './builtin-store.ts';
import { SecretStores } from './secret-store.ts';
import { VAULT_REF_PREFIX, VaultSecretStore } from './vault-store.ts';

/** What answers show instead of a secret's value. */
export const MASK = '••••';
/** Secrets shorter than this are not masked in logs: masking "1" would garble every line. */
const MIN_MASKED = 4;

/** The platform's secret box from its config (one per process; the ring file is shared). */
export function secretBoxFor(config: MinipaasConfig): SecretBox {
  return new SecretBox(config.home, config.secrets.masterKey);
}

/**
 * The platform's secret stores from its config: the built-in store (always, so sealed values keep opening)
 * and, with `secrets.store: vault`, the Vault KV v2 store new secrets then go to.
 */
export function secretStoresFor(config: MinipaasConfig, box: SecretBox = secretBoxFor(config)): SecretStores {
  const builtin = new BuiltinSecretStore(box);
  const v = config.secrets.vault;
  if (config.secrets.store !== 'vault' || !v.url || !v.token)
    return new SecretStores(builtin, [], [VAULT_REF_PREFIX]);
  const vault = new VaultSecretStore({
    url: v.url,
    token: v.token,
    mount: v.mount,
    prefix: v.prefix,
    ...(v.namespace ? { namespace: v.namespace } : {}),
  });
  return new SecretStores(vault, [builtin]);
}

/**
 * Whether `value` is a secret reference of any kind of store (sealed `mp1.` or Vault `mpvault:`), whatever
 * this platform's configuration: for code that has no {@link SecretStores} at hand.
 */
export function isSecretReference(value: string): boolean {
  return SecretBox.isSealed(value) || value.startsWith(VAULT_REF_PREFIX);
}

/** The context an add-on's database password is sealed in (its row id). */
export const addonPasswordContext = (addonId: string) => `addon:${addonId}`;

/** Whether `env` holds `name` as a secret (a reference of one of `stores`). */
export function isSecret(stores: SecretStores, env: Readonly<Record<string, string>>, name: string): boolean {
  const v = Object.hasOwn(env, name) ? env[name] : undefined;
  return v !== undefined && stores.isRef(v);
}

/**
 * Applies a PATCH's `env` (config vars, plaintext) and `secrets` (stored, their references kept) to a copy
 * of `env`. A name in both, or a config value that looks like a secret reference, is a 400 before anything
 * is stored.
 */
export async function applyEnvChanges(
  stores: SecretStores,
  appId: string,
  env: Readonly<Record<string, string>>,
  changes: { env?: Record<string, string | null>; secrets?: Record<string, string | null> },
): Promise<Record<string, string>> {
  const out: Record<string, string> = Object.assign(Object.create(null), env);
  for (const k of Object.keys(changes.secrets ?? {}))
    if (changes.env && Object.hasOwn(changes.env, k))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `${k} is given both as a config var and as a secret`,
      );
  for (const [k, v] of Object.entries(changes.env ?? {}))
    if (v !== null && stores.isRef(v))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `the value of ${k} starts like a sealed secret (mp1. or mpvault:); set it as a secret or change it`,
      );
  for (const [k, v] of Object.entries(changes.env ?? {})) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  for (const [k, v] of Object.entries(changes.secrets ?? {})) {
    if (v === null) delete out[k];
    else out[k] = await stores.put({ appId, name: k }, v);
  }
  return out;
}

/** The env an answer shows: secrets as {@link MASK}, or opened with `reveal`; plus the secrets' names. */
export async function viewEnv(
  stores: SecretStores,
  appId: string,
  env: Readonly<Record<string, string>>,
  reveal = false,
): Promise<{ env: Record<string, string>; secrets: string[] }> {
  const shown: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (!stores.isRef(v)) {
      shown[k] = v;
      continue;
    }
    secrets.push(k);
    shown[k] = reveal ? await stores.get({ appId, name: k }, v) : MASK;
  }
  return { env: shown, secrets: secrets.sort() };
}

/** Opens the secret references of a runtime spec's env in place and adds the values to its masked values. */
export async function openSpecSecrets(stores: SecretStores, appId: string, spec: RuntimeSpec): Promise<void> {
  const masked = new Set(spec.maskValues ?? []);
  for (const [k, v] of Object.entries(spec.env)) {
    if (!stores.isRef(v)) continue;
    const plain = await stores.get({ appId, name: k }, v);
    spec.env[k] = plain;
    if (plain.length >= MIN_MASKED) masked.add(plain);
  }
  if (masked.size > 0) spec.maskValues = [...masked].sort((a, b) => b.length - a.length);
}

/** The secret references an app's env and its releases hold, by variable name (what deleting it forgets). */
export async function appSecretRefs(
  db: Kysely<Database>,
  stores: SecretStores,
  appId: string,
): Promise<Map<string, string[]>> {
  const envs = [
    ...(await db.selectFrom('apps').select('env').where('id', '=', appId).execute()).map((r) => r.env),
    ...(await db.selectFrom('releases').select('config_env').where('app_id', '=', appId).execute()).map(
      (r) => r.config_env,
    ),
  ];
  const refs = new Map<string, string[]>();
  for (const env of envs)
    for (const [k, v] of Object.entries(env ?? {}))
      if (stores.isRef(v)) refs.set(k, [...(refs.get(k) ?? []), v]);
  return refs;
}

/**
 * Forgets what the stores keep behind `refs` (from {@link appSecretRefs}, taken before the app's rows
 * went): Vault entries of a deleted app. Sealed values went with the rows. Returns the names that could
 * not be forgotten (the store unreachable), each with the reason, for the caller to log.
 */
export async function forgetAppSecrets(
  stores: SecretStores,
  appId: string,
  refs: ReadonlyMap<string, string[]>,
): Promise<Array<{ name: string; error: string }>> {
  const failed: Array<{ name: string; error: string }> = [];
  for (const [name, list] of refs)
    for (const store of new Set(list.map((r) => stores.ownerOf(r))))
      try {
        await store?.forget(
          { appId, name },
          list.filter((r) => stores.ownerOf(r) === store),
        );
      } catch (err) {
        failed.push({ name, error: (err as Error).message });
      }
  return failed;
}

/**
 * The plaintexts of the secrets in `envs` (an app's env, its current release's snapshot), longest first,
 * without the short ones logs do not mask: what log lines from any runtime must not show.
 */
export async function openSecretValues(
  stores: SecretStores,
  appId: string,
  ...envs: ReadonlyArray<Readonly<Record<string, string>> | null | undefined>
): Promise<string[]> {
  const values = new Set<string>();
  for (const env of envs)
    for (const [k, v] of Object.entries(env ?? {}))
      if (stores.isRef(v)) {
        const plain = await stores.get({ appId, name: k }, v);
        if (plain.length >= MIN_MASKED) values.add(plain);
      }
  return [...values].sort((a, b) => b.length - a.length);
}

/** Replaces every masked value in `line` (longest first). */
export function maskLine(line: string, values: readonly string[] | undefined): string {
  let out = line;
  for (const v of values ?? []) if (v && out.includes(v)) out = out.split(v).join('********');
  return out;
}

/**
 * Rotates the master key: a new key goes first in the ring, then every sealed value of every app and
 * release is opened and sealed again under it, in one transaction. Returns the new key id and the count.
 */
export async function rotateMasterKey(
  db: Kysely<Database>,
  box: SecretBox,
): Promise<{ kid: string; resealed: number }> {
  const kid = box.rotate();
  let resealed = 0;
  const reseal = (appId: string, env: Record<string, string>) => {
    let changed = false;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(env ?? {})) {
      if (SecretBox.isSealed(v) && v.split('.')[1] !== kid) {
        out[k] = box.seal(box.open(v, envContext({ appId, name: k })), envContext({ appId, name: k }));
        changed = true;
        resealed++;
      } else out[k] = v;
    }
    return changed ? out : null;
  };
  await db.transaction().execute(async (trx) => {
    for (const a of await trx.selectFrom('apps').select(['id', 'env']).forUpdate().execute()) {
      const env = reseal(a.id, a.env);
      if (env)
        await trx
          .updateTable('apps')
          .set({ env: JSON.stringify(env) })
          .where('id', '=', a.id)
          .execute();
    }
    // Add-on passwords: sealed again, and sealed for the first time when an older add-on kept them plain.
    for (const a of await trx.selectFrom('addons').select(['id', 'password']).forUpdate().execute()) {
      const sealed = SecretBox.isSealed(a.password);
      if (sealed && a.password.split('.')[1] === kid) continue;
      const plain = sealed ? box.open(a.password, addonPasswordContext(a.id)) : a.password;
      await trx
        .updateTable('addons')
        .set({ password: box.seal(plain, addonPasswordContext(a.id)) })
        .where('id', '=', a.id)
        .execute();
      resealed++;
    }
    for (const r of await trx
      .selectFrom('releases')
      .select(['id', 'app_id', 'config_env'])
      .forUpdate()
      .execute()) {
      const env = reseal(r.app_id, r.config_env);
      if (env)
        await trx
          .updateTable('releases')
          .set({ config_env: JSON.stringify(env) })
          .where('id', '=', r.id)
          .execute();
    }
    // Git credentials and webhook tokens (docs/git.md).
    resealed += await resealGitSecrets(trx, box, kid);
  });
  return { kid, resealed };
}
