/**
 * Secret env vars through the API, in-process (`app.inject`) on a real Postgres: first with the built-in
 * store, then the same platform moved to Vault (the local KV v2 stand-in of fixtures/vault-kv2.ts; Vault
 * itself is not installable here). Hostile input is refused with a 4xx and changes nothing; values are
 * masked unless revealed; sealed values keep opening after the move; master-key rotation seals the
 * built-in values again and leaves Vault references alone; Vault down is a 503 that changes nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { loadConfig, type MinipaasConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testPostgresUrl } from '../../../test/helpers/postgres.ts';
import type { Principal } from '../src/http/access.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';
import { startVaultStandIn, type VaultStandIn } from './fixtures/vault-kv2.ts';

const enabled = Boolean(testPostgresUrl() || process.env.CI);
const VAULT_TOKEN = 'hvs.secrets-api-test';

describe.runIf(enabled)('secret env vars through the API', () => {
  let home: string;
  let config: MinipaasConfig;
  let db: { url: string; drop(): Promise<void> };
  let vault: VaultStandIn;
  let agent: AgentHandle;
  let cp: ControlPlane;
  let auth: { authorization: string };

  const open = async (extra: Partial<MinipaasConfig['secrets']> = {}) => {
    cp = await createControlPlane({
      config: { ...config, databaseUrl: db.url, secrets: { ...config.secrets, ...extra } },
      drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
      logger: pino({ level: 'silent' }),
      reconcile: false,
    });
    if (cp.createdAdminToken) auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  };
  const api = (method: 'GET' | 'PATCH' | 'POST' | 'DELETE', url: string, payload?: object) =>
    cp.app.inject({ method, url, headers: auth, ...(payload !== undefined ? { payload } : {}) });
  const rawEnv = async (name: string) =>
    (
      await cp.ctx.store.db
        .selectFrom('apps')
        .select('env')
        .where('name', '=', name)
        .executeTakeFirstOrThrow()
    ).env;

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'mp-secrets-api-'));
    config = await loadConfig({ MINIPAAS_HOME: home, MINIPAAS_LOG_LEVEL: 'silent' });
    agent = await startAgent({
      config,
      logger: pino({ level: 'silent' }),
      router: { host: '127.0.0.1', port: 0 },
    });
    db = await createTestDatabase('secrets');
    vault = await startVaultStandIn({ token: VAULT_TOKEN });
    await open();
  }, 60_000);

  afterAll(async () => {
    await cp?.close();
    await vault?.close();
    await agent?.close();
    await db?.drop();
    await rm(home, { recursive: true, force: true });
  });

  it('seals secrets, masks them unless revealed, and refuses hostile input without changing anything', async () => {
    expect((await api('POST', '/api/v1/apps', { name: 'sec' })).statusCode).toBe(201);
    const set = await cp.app.inject({
      method: 'PATCH',
      url: '/api/v1/apps/sec',
      headers: { ...auth, 'content-type': 'application/json' },
      payload:
        '{"env":{"GREETING":"hi"},"secrets":{"API_KEY":"builtin-secret-1","constructor":"proto-named"}}',
    });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.body).not.toContain('builtin-secret-1');
    expect(set.json().env).toMatchObject({ GREETING: 'hi', API_KEY: '••••', constructor: '••••' });
    expect(set.json().secrets).toEqual(['API_KEY', 'constructor']);
    const list = await api('GET', '/api/v1/apps');
    expect(list.body).not.toContain('builtin-secret-1');
    expect(list.body).not.toContain('proto-named');
    const env = await rawEnv('sec');
    expect(env.API_KEY).toMatch(/^mp1\./);
    expect(JSON.stringify(env)).not.toContain('builtin-secret-1');
    const revealed = await api('GET', '/api/v1/apps/sec?reveal=true');
    expect(revealed.json().env).toMatchObject({
      API_KEY: 'builtin-secret-1',
      constructor: 'proto-named',
      GREETING: 'hi',
    });
    expect(Object.getPrototypeOf(revealed.json().env)).toBe(Object.prototype);

    const before = JSON.stringify(await rawEnv('sec'));
    const hostile: Array<[string, object | undefined, number, RegExp]> = [
      ['PATCH', { env: { X: 'mp1.a.b.c.d' } }, 400, /starts like a sealed secret/],
      ['PATCH', { env: { X: 'mpvault:secret:x/y@1' } }, 400, /starts like a sealed secret/],
      [
        'PATCH',
        { env: { API_KEY: 'a' }, secrets: { API_KEY: 'b' } },
        400,
        /both as a config var and as a secret/,
      ],
      ['PATCH', { secrets: { 'BAD-NAME': 'v' } }, 400, /env var names/],
      ['PATCH', { secrets: { X: '' } }, 400, /secrets/],
      ['PATCH', { secrets: { X: 'v'.repeat(65537) } }, 400, /secrets/],
      ['PATCH', { secrets: { X: 1 } }, 400, /secrets/],
    ];
    for (const [method, body, status, message] of hostile) {
      const r = await api(method as 'PATCH', '/api/v1/apps/sec', body);
      expect(r.statusCode, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(r.json().error.message).toMatch(message);
    }
    // Raw JSON: `__proto__` in an object literal would set the prototype instead of a key.
    const proto = await cp.app.inject({
      method: 'PATCH',
      url: '/api/v1/apps/sec',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{"secrets":{"__proto__":{"polluted":"yes"}, "Y":"v"}}',
    });
    expect(proto.statusCode).toBe(400);
    expect((await api('GET', '/api/v1/apps/sec?reveal=yes')).statusCode).toBe(400);
    expect((await api('GET', '/api/v1/apps/sec?reveal=true&x=1')).statusCode).toBe(400);
    expect(JSON.stringify(await rawEnv('sec'))).toBe(before);
    // No credentials: no reveal.
    const anon = await cp.app.inject({ method: 'GET', url: '/api/v1/apps/sec?reveal=true' });
    expect(anon.statusCode).toBe(401);
    expect(anon.body).not.toContain('builtin-secret-1');
    // Revealing needs app:secret:reveal (developer and up): a viewer reads the app, masked, and no more.
    const owner: Principal = {
      userId: null,
      name: 'test',
      tokenId: null,
      sessionId: null,
      cap: 'owner',
      everywhere: true,
      projectId: null,
      teams: new Map(),
    };
    const tokenOf = async (role: 'viewer' | 'developer') =>
      `Bearer ${(await cp.ctx.tokens.create(owner, { name: role, role }, cp.ctx.access)).token}`;
    const viewer = await tokenOf('viewer');
    const asViewer = (url: string) =>
      cp.app.inject({ method: 'GET', url, headers: { authorization: viewer } });
    expect((await asViewer('/api/v1/apps/sec')).json().env.API_KEY).toBe('••••');
    const denied = await asViewer('/api/v1/apps/sec?reveal=true');
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.message).toMatch(/app:secret:reveal/);
    expect(denied.body).not.toContain('builtin-secret-1');
    const developer = await tokenOf('developer');
    const asDeveloper = await cp.app.inject({
      method: 'GET',
      url: '/api/v1/apps/sec?reveal=true',
      headers: { authorization: developer },
    });
    expect(asDeveloper.json().env.API_KEY).toBe('builtin-secret-1');
  });

  it('moved to Vault: new secrets go there, sealed ones still open, rotation leaves Vault alone', async () => {
    await cp.close();
    await open({
      store: 'vault',
      vault: { url: vault.url, token: VAULT_TOKEN, mount: 'secret', prefix: 'mp' },
    });
    const r = await api('PATCH', '/api/v1/apps/sec', { secrets: { DB_PASSWORD: 'vault-secret-1' } });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().env.DB_PASSWORD).toBe('••••');
    const env = await rawEnv('sec');
    expect(env.DB_PASSWORD).toMatch(/^mpvault:secret:mp\/[0-9a-f-]{36}\/DB_PASSWORD@1$/);
    expect(env.API_KEY).toMatch(/^mp1\./);
    expect(JSON.stringify(env)).not.toContain('vault-secret-1');
    const rv = await api('GET', '/api/v1/apps/sec?reveal=true');
    expect(rv.json().env, rv.body).toMatchObject({
      DB_PASSWORD: 'vault-secret-1',
      API_KEY: 'builtin-secret-1',
    });

    const rotated = await api('POST', '/api/v1/secrets/rotate-key');
    expect(rotated.statusCode, rotated.body).toBe(200);
    expect(rotated.json().resealed).toBe(2); // API_KEY, constructor
    const after = await rawEnv('sec');
    expect(after.DB_PASSWORD).toBe(env.DB_PASSWORD);
    expect(after.API_KEY).not.toBe(env.API_KEY);
    const rv2 = await api('GET', '/api/v1/apps/sec?reveal=true');
    expect(rv2.json().env, rv2.body).toMatchObject({
      DB_PASSWORD: 'vault-secret-1',
      API_KEY: 'builtin-secret-1',
    });

    // Vault refusing (a revoked token) is a 503 naming Vault, and the app's env is unchanged.
    await cp.close();
    await open({
      store: 'vault',
      vault: { url: vault.url, token: 'revoked', mount: 'secret', prefix: 'mp' },
    });
    const before = JSON.stringify(await rawEnv('sec'));
    const refused = await api('PATCH', '/api/v1/apps/sec', { secrets: { OTHER: 'never-stored' } });
    expect(refused.statusCode).toBe(503);
    expect(refused.json().error).toMatchObject({ code: 'MINIPAAS_ERR_SECRET_STORE' });
    expect(refused.json().error.message).toMatch(/Vault answered 403/);
    expect(refused.body).not.toContain('revoked');
    expect(JSON.stringify(await rawEnv('sec'))).toBe(before);
    // Masked answers need no Vault call.
    expect((await api('GET', '/api/v1/apps/sec')).statusCode).toBe(200);
    // Deleting the app while Vault refuses still deletes it (the entry stays in Vault, logged by path).
    const del = await api('DELETE', '/api/v1/apps/sec');
    expect(del.statusCode, del.body).toBe(204);
    expect((await api('GET', '/api/v1/apps/sec')).statusCode).toBe(404);
    expect([...vault.entries.keys()].some((k) => k.endsWith('/DB_PASSWORD'))).toBe(true);
  });
});
