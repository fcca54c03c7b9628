/**
 * Secret env vars (docs/security.md, ADR 0010). A secret lives in the app's `env` map (and in every release's
 * `config_env` snapshot, so a rollback restores it) as a value sealed by the {@link SecretBox}, bound to the
 * app id and the variable's name; config vars stay plaintext. Values are opened only where the runtime spec
 * is built (minipaasd, the build worker) and where `?reveal=true` asks for them.
 */
import { type MinipaasConfig, MinipaasError, type RuntimeSpec, SecretBox } from '@minipaas/core';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

/** What answers show instead of a secret's value. */
export const MASK = '••••';
/** Secrets shorter than this are not masked in logs: masking "1" would garble every line. */
const MIN_MASKED = 4;

/** The platform's secret box from its config (one per process; the ring file is shared). */
export function secretBoxFor(config: MinipaasConfig): SecretBox {
  return new SecretBox(config.home, config.secrets.masterKey);
}

const context = (appId: string, name: string) => `env:${appId}:${name}`;

/** The context an add-on's database password is sealed in (its row id). */
export const addonPasswordContext = (addonId: string) => `addon:${addonId}`;

/** Whether `env` holds `name` as a secret. */
export function isSecret(env: Readonly<Record<string, string>>, name: string): boolean {
  const v = Object.hasOwn(env, name) ? env[name] : undefined;
  return v !== undefined && SecretBox.isSealed(v);
}

/**
 * Applies a PATCH's `env` (config vars, plaintext) and `secrets` (sealed here) to a copy of `env`.
 * A name in both, or a config value that looks like a sealed value, is a 400 before anything changes.
 */
export function applyEnvChanges(
  box: SecretBox,
  appId: string,
  env: Readonly<Record<string, string>>,
  changes: { env?: Record<string, string | null>; secrets?: Record<string, string | null> },
): Record<string, string> {
  const out: Record<string, string> = Object.assign(Object.create(null), env);
  for (const k of Object.keys(changes.secrets ?? {}))
    if (changes.env && Object.hasOwn(changes.env, k))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `${k} is given both as a config var and as a secret`,
      );
  for (const [k, v] of Object.entries(changes.env ?? {})) {
    if (v === null) delete out[k];
    else if (SecretBox.isSealed(v))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `the value of ${k} starts like a sealed secret (mp1.); set it as a secret or change it`,
      );
    else out[k] = v;
  }
  for (const [k, v] of Object.entries(changes.secrets ?? {})) {
    if (v === null) delete out[k];
    else out[k] = box.seal(v, context(appId, k));
  }
  return out;
}

/** The env an answer shows: secrets as {@link MASK}, or opened with `reveal`; plus the secrets' names. */
export function viewEnv(
  box: SecretBox,
  appId: string,
  env: Readonly<Record<string, string>>,
  reveal = false,
): { env: Record<string, string>; secrets: string[] } {
  const shown: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (!SecretBox.isSealed(v)) {
      shown[k] = v;
      continue;
    }
    secrets.push(k);
    shown[k] = reveal ? box.open(v, context(appId, k)) : MASK;
  }
  return { env: shown, secrets: secrets.sort() };
}

/** Opens the sealed values of a runtime spec's env in place and adds them to its masked values. */
export function openSpecSecrets(box: SecretBox, appId: string, spec: RuntimeSpec): void {
  const masked = new Set(spec.maskValues ?? []);
  for (const [k, v] of Object.entries(spec.env)) {
    if (!SecretBox.isSealed(v)) continue;
    const plain = box.open(v, context(appId, k));
    spec.env[k] = plain;
    if (plain.length >= MIN_MASKED) masked.add(plain);
  }
  if (masked.size > 0) spec.maskValues = [...masked].sort((a, b) => b.length - a.length);
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
        out[k] = box.seal(box.open(v, context(appId, k)), context(appId, k));
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
  });
  return { kid, resealed };
}
