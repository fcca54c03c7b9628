/**
 * Secrets kept in HashiCorp Vault (KV v2), end to end through the real CLI on a real platform (`minipaas
 * up` with MINIPAAS_SECRET_STORE=vault). Vault is not installable here: "Vault" is the local KV v2
 * stand-in of packages/server/test/fixtures/vault-kv2.ts, which speaks the endpoints the store uses.
 *
 * A secret goes to Vault (the database keeps only `mpvault:<mount>:<path>@<version>`), the app gets it,
 * its log masks it; changing it rolls the app without a build; a rollback to an older release gets the
 * older Vault version back; the plaintexts and the Vault token are in no file under MINIPAAS_HOME, no
 * table row and no platform log line; destroying the app deletes its Vault entries.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVaultStandIn, type VaultStandIn } from '../../packages/server/test/fixtures/vault-kv2.ts';
import { filesContaining, rowsContaining } from '../helpers/plaintext-search.ts';
import { type Platform, routerGet, startPlatform, waitFor } from '../helpers/platform.ts';

const VAULT_TOKEN = `hvs.${randomBytes(12).toString('hex')}`;
const FIRST = `first_${randomBytes(16).toString('hex')}`;
const SECOND = `second_${randomBytes(16).toString('hex')}`;
/** Set as a config var first (so logged in the clear), then the value of a secret. */
const LATER = `later_${randomBytes(16).toString('hex')}`;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const SERVER = `
const http = require('node:http');
const h = (s) => require('node:crypto').createHash('sha256').update(s || '').digest('hex');
console.log('starting with token ' + process.env.API_TOKEN + ', greeting ' + process.env.GREETING);
http.createServer((req, res) => res.end(h(process.env.API_TOKEN))).listen(Number(process.env.PORT));
`;

let p: Platform;
let vault: VaultStandIn;
let work: string;

async function ok(args: string[]): Promise<string> {
  const r = await p.cli(args, { timeoutMs: 120_000 });
  expect(r.code, `minipaas ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout + r.stderr;
}

const releases = async () =>
  (JSON.parse(await ok(['releases', 'vs', '--json'])) as { releases: unknown[] }).releases.length;

async function serves(value: string): Promise<void> {
  await waitFor(
    `the app to serve the hash of ${value.split('_')[0]}`,
    async () => (await routerGet(p.routerPort, '/', `vs.localhost:${p.routerPort}`)).body === sha(value),
    30_000,
    200,
  );
}

/** The values the stand-in holds for the app (`value` of every version still kept). */
const inVault = () =>
  [...vault.entries.values()].flatMap((versions) => versions.map((v) => v?.data.value).filter(Boolean));

beforeAll(async () => {
  vault = await startVaultStandIn({ token: VAULT_TOKEN });
  p = await startPlatform({
    MINIPAAS_SECRET_STORE: 'vault',
    MINIPAAS_VAULT_URL: vault.url,
    MINIPAAS_VAULT_TOKEN: VAULT_TOKEN,
    MINIPAAS_VAULT_PREFIX: 'e2e/minipaas',
    // Every platform log line is searched for the plaintexts below, debug ones included.
    MINIPAAS_LOG_LEVEL: 'debug',
  });
  work = await mkdtemp(join(tmpdir(), 'mp-e2e-vault-'));
}, 90_000);

afterAll(async () => {
  await p?.stop();
  await vault?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('secrets in Vault (KV v2 stand-in)', () => {
  it('reach the app, roll without a build, come back with a rollback, and are stored only in Vault', async () => {
    await ok(['apps', 'create', 'vs']);
    expect(await ok(['env:set', 'vs', '--secret', `API_TOKEN=${FIRST}`])).toContain('Set secret API_TOKEN');
    const appId = (await p.api<{ id: string }>('GET', '/api/v1/apps/vs')).body.id;
    expect([...vault.entries.keys()]).toEqual([`secret/e2e/minipaas/${appId}/API_TOKEN`]);

    const app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'server.js'), SERVER);
    await writeFile(join(app, 'Procfile'), 'web: node server.js\n');
    await ok(['deploy', app, '--app', 'vs']);
    await serves(FIRST);
    expect(await releases()).toBe(1);

    // Changing the secret rolls the running release: no build, no new release.
    await ok(['env:set', 'vs', '--secret', `API_TOKEN=${SECOND}`]);
    await serves(SECOND);
    expect(await releases()).toBe(1);
    expect(JSON.parse(await ok(['env', 'vs', '--reveal', '--json'])).API_TOKEN).toBe(SECOND);
    expect(await ok(['env', 'vs'])).toMatch(/API_TOKEN\s+••••\s+\(secret\)/);

    // v2 snapshots version 2; a rollback to v1 runs with version 1 of the secret again.
    await ok(['deploy', app, '--app', 'vs']);
    await serves(SECOND);
    await ok(['rollback', 'vs', 'v1']);
    await serves(FIRST);
    expect(JSON.parse(await ok(['env', 'vs', '--reveal', '--json'])).API_TOKEN).toBe(FIRST);

    const logs = await ok(['logs', 'vs', '-n', '100']);
    expect(logs).toContain('starting with token ********');

    // Positive controls: Vault holds both values, the database holds references to them.
    expect(inVault()).toEqual(expect.arrayContaining([FIRST, SECOND]));
    expect(
      (await rowsContaining(p, `mpvault:secret:e2e/minipaas/${appId}/API_TOKEN@1`)).length,
    ).toBeGreaterThan(0);
    expect(p.output()).toMatch(/"level":20/); // the debug lines are there to be searched
    for (const needle of [FIRST, SECOND, VAULT_TOKEN]) {
      expect(await filesContaining(p.home, needle)).toEqual([]);
      expect(await rowsContaining(p, needle)).toEqual([]);
      expect(p.output()).not.toContain(needle);
    }
    expect(logs).not.toContain(FIRST);
    expect(logs).not.toContain(SECOND);

    // An env change after a rollback reaches the app (the rolled-back release runs with the app's env).
    // A value logged in the clear while it was a config var is masked in those old lines once it is a
    // secret's value: the log API masks the app's secret values whatever captured the line.
    await ok(['env:set', 'vs', `GREETING=${LATER}`]);
    await waitFor('the clear greeting in the log', async () =>
      (await ok(['logs', 'vs', '-n', '200'])).includes(`greeting ${LATER}`),
    );
    await ok(['env:set', 'vs', '--secret', `ALSO_SECRET=${LATER}`]);
    const masked = await ok(['logs', 'vs', '-n', '200']);
    expect(masked).not.toContain(LATER);
    expect(masked).toContain('greeting ********');

    // A master-key rotation has nothing of Vault's to seal again; the app keeps its value.
    expect(JSON.parse(await ok(['secrets:rotate-key', '--json'])).resealed).toBe(0);
    expect(JSON.parse(await ok(['env', 'vs', '--reveal', '--json'])).ALSO_SECRET).toBe(LATER);

    // Destroying the app deletes what Vault kept for it.
    await ok(['apps:destroy', 'vs', '--confirm', 'vs']);
    expect(vault.entries.size).toBe(0);
  }, 300_000);
});
