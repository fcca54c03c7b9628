import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, MinipaasError, SecretBox } from '@minipaas/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVaultStandIn, type VaultStandIn } from '../../test/fixtures/vault-kv2.ts';
import { secretStoresFor } from './app-secrets.ts';
import { BuiltinSecretStore } from './builtin-store.ts';
import { SecretStores } from './secret-store.ts';
import { VaultSecretStore } from './vault-store.ts';

const appId = '6f1c2a7e-0000-4000-8000-000000000001';
const other = '6f1c2a7e-0000-4000-8000-000000000002';
const TOKEN = 'hvs.test-token-that-must-not-leak';

async function failure(p: Promise<unknown>): Promise<MinipaasError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(MinipaasError);
    return err as MinipaasError;
  }
  throw new Error('expected a failure');
}

let home: string;
let vault: VaultStandIn;
beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'mp-secret-stores-'));
  vault = await startVaultStandIn({ token: TOKEN, mounts: ['secret', 'kv/team'] });
});
afterAll(async () => {
  await vault.close();
  rmSync(home, { recursive: true, force: true });
});

describe('BuiltinSecretStore', () => {
  it('seals under the 0600 key ring, bound to the app and the name', async () => {
    const store = new BuiltinSecretStore(new SecretBox(home));
    expect(statSync(join(home, 'master.key')).mode & 0o777).toBe(0o600);
    const ref = await store.put({ appId, name: 'API_KEY' }, 'plain-value-123');
    expect(ref).toMatch(/^mp1\./);
    expect(ref).not.toContain('plain-value-123');
    expect(store.owns(ref)).toBe(true);
    expect(await store.get({ appId, name: 'API_KEY' }, ref)).toBe('plain-value-123');
    expect((await failure(store.get({ appId, name: 'OTHER' }, ref))).code).toBe('MINIPAAS_ERR_SECRET');
    expect((await failure(store.get({ appId: other, name: 'API_KEY' }, ref))).code).toBe(
      'MINIPAAS_ERR_SECRET',
    );
  });
});

describe('VaultSecretStore (against a local KV v2 stand-in)', () => {
  it('writes a new version per put; each reference reads back its own version', async () => {
    const store = new VaultSecretStore({ url: vault.url, token: TOKEN, prefix: '/mp/' });
    const key = { appId, name: 'DB_PASSWORD' };
    const r1 = await store.put(key, 'first-secret');
    const r2 = await store.put(key, 'second-secret');
    expect(r1).toBe(`mpvault:secret:mp/${appId}/DB_PASSWORD@1`);
    expect(r2).toBe(`mpvault:secret:mp/${appId}/DB_PASSWORD@2`);
    expect(store.owns(r1)).toBe(true);
    expect(await store.get(key, r2)).toBe('second-secret');
    // A rollback to a release holding r1 gets the first value back.
    expect(await store.get(key, r1)).toBe('first-secret');
    expect(vault.entries.get(`secret/mp/${appId}/DB_PASSWORD`)?.length).toBe(2);
  });

  it('refuses a reference made for another app or name, or a malformed one', async () => {
    const store = new VaultSecretStore({ url: vault.url, token: TOKEN });
    const ref = await store.put({ appId, name: 'TOKEN_A' }, 'value-a');
    expect((await failure(store.get({ appId: other, name: 'TOKEN_A' }, ref))).message).toMatch(
      /another variable/,
    );
    expect((await failure(store.get({ appId, name: 'TOKEN_B' }, ref))).code).toBe('MINIPAAS_ERR_SECRET');
    const traversal = `mpvault:secret:minipaas/../../${appId}/TOKEN_A@1`;
    expect((await failure(store.get({ appId, name: 'TOKEN_A' }, traversal))).code).toBe(
      'MINIPAAS_ERR_SECRET',
    );
    expect((await failure(store.get({ appId, name: 'TOKEN_A' }, 'mpvault:nonsense'))).message).toMatch(
      /malformed/,
    );
  });

  it('uses another mount and the namespace header', async () => {
    const store = new VaultSecretStore({
      url: `${vault.url}/`,
      token: TOKEN,
      mount: 'kv/team',
      namespace: 'ops',
    });
    const ref = await store.put({ appId, name: 'X' }, 'in-kv-team');
    expect(ref).toBe(`mpvault:kv/team:minipaas/${appId}/X@1`);
    expect(await store.get({ appId, name: 'X' }, ref)).toBe('in-kv-team');
    expect(vault.requests.at(-1)).toMatchObject({
      method: 'GET',
      namespace: 'ops',
      path: `/v1/kv/team/data/minipaas/${appId}/X?version=1`,
    });
  });

  it('a version past max_versions or forgotten is a clear MINIPAAS_ERR_SECRET', async () => {
    const store = new VaultSecretStore({ url: vault.url, token: TOKEN });
    const key = { appId, name: 'ROTATED' };
    const refs: string[] = [];
    for (let i = 1; i <= 11; i++) refs.push(await store.put(key, `v${i}`));
    const gone = await failure(store.get(key, refs[0] as string));
    expect(gone.code).toBe('MINIPAAS_ERR_SECRET');
    expect(gone.message).toMatch(/version 1 of ROTATED is not in Vault/);
    expect(await store.get(key, refs[10] as string)).toBe('v11');
    await store.forget(key, refs);
    expect(vault.entries.has(`secret/minipaas/${appId}/ROTATED`)).toBe(false);
    expect((await failure(store.get(key, refs[10] as string))).code).toBe('MINIPAAS_ERR_SECRET');
  });

  it('a wrong token or an unreachable Vault is a 503 that never shows the token', async () => {
    const bad = new VaultSecretStore({ url: vault.url, token: 'wrong' });
    const denied = await failure(bad.put({ appId, name: 'Y' }, 'value'));
    expect(denied.code).toBe('MINIPAAS_ERR_SECRET_STORE');
    expect(denied.message).toMatch(/403.*permission denied/);
    const down = new VaultSecretStore({ url: 'http://127.0.0.1:1', token: TOKEN, timeoutMs: 2000 });
    const e = await failure(down.put({ appId, name: 'Y' }, 'value'));
    expect(e.code).toBe('MINIPAAS_ERR_SECRET_STORE');
    expect(e.message).not.toContain(TOKEN);
    expect(denied.message).not.toContain(TOKEN);
    expect(() => new VaultSecretStore({ url: 'file:///etc/passwd', token: TOKEN })).toThrow(/http/);
  });
});

describe('SecretStores', () => {
  it('puts into the current store and still opens the built-in store’s sealed values', async () => {
    const builtin = new BuiltinSecretStore(new SecretBox(home));
    const sealed = await builtin.put({ appId, name: 'OLD' }, 'sealed-before-vault');
    const stores = new SecretStores(new VaultSecretStore({ url: vault.url, token: TOKEN }), [builtin]);
    const ref = await stores.put({ appId, name: 'NEW' }, 'in-vault');
    expect(ref).toMatch(/^mpvault:/);
    expect(stores.isRef(ref) && stores.isRef(sealed)).toBe(true);
    expect(stores.isRef('plain config')).toBe(false);
    expect(await stores.get({ appId, name: 'OLD' }, sealed)).toBe('sealed-before-vault');
    expect(await stores.get({ appId, name: 'NEW' }, ref)).toBe('in-vault');
    expect((await failure(stores.get({ appId, name: 'NEW' }, 'plain'))).code).toBe('MINIPAAS_ERR_SECRET');
  });
});

describe('SecretStores without Vault configured', () => {
  it('still takes a Vault reference for a secret (never a config value), and says why it cannot open it', async () => {
    const stores = new SecretStores(new BuiltinSecretStore(new SecretBox(home)), [], ['mpvault:']);
    const ref = `mpvault:secret:minipaas/${appId}/K@1`;
    expect(stores.isRef(ref)).toBe(true);
    expect((await failure(stores.get({ appId, name: 'K' }, ref))).message).toMatch(/not configured for/);
  });
});

describe('secretStoresFor (config secrets.*)', () => {
  it('builds the built-in store by default and Vault with MINIPAAS_SECRET_STORE=vault; bad settings stop the start', async () => {
    const base = { MINIPAAS_HOME: home };
    const builtin = secretStoresFor(await loadConfig(base));
    expect(builtin.current.kind).toBe('builtin');
    expect(builtin.isRef('mpvault:secret:x/y@1')).toBe(true);
    const vaultCfg = await loadConfig({
      ...base,
      MINIPAAS_SECRET_STORE: 'vault',
      MINIPAAS_VAULT_URL: vault.url,
      MINIPAAS_VAULT_TOKEN: TOKEN,
      MINIPAAS_VAULT_MOUNT: 'kv/team',
    });
    const stores = secretStoresFor(vaultCfg);
    expect(stores.current.kind).toBe('vault');
    expect(await stores.put({ appId, name: 'CFG' }, 'v')).toMatch(/^mpvault:kv\/team:minipaas\//);
    await expect(loadConfig({ ...base, MINIPAAS_SECRET_STORE: 'vault' })).rejects.toThrow(
      /secrets.vault.url and secrets.vault.token/,
    );
    await expect(
      loadConfig({
        ...base,
        MINIPAAS_SECRET_STORE: 'vault',
        MINIPAAS_VAULT_URL: 'ftp://x',
        MINIPAAS_VAULT_TOKEN: 't',
      }),
    ).rejects.toThrow(/http\(s\)/);
    await expect(loadConfig({ ...base, MINIPAAS_VAULT_MOUNT: '../sys' })).rejects.toThrow(
      /secrets.vault.mount/,
    );
    await expect(loadConfig({ ...base, MINIPAAS_SECRET_STORE: 'aws' })).rejects.toThrow(/secrets.store/);
  });
});
