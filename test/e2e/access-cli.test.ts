/**
 * Access control through the real CLI against the real platform (`minipaas up`): users:create, teams,
 * teams:create, teams:add-member, teams:members, projects create --team, tokens:create (role cap, project
 * scope, expiry), a scoped token at work, tokens, tokens:revoke, audit and audit -f. Refusals exit
 * non-zero with one readable line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, type CliResult, type Platform, ROOT, startPlatform, waitFor } from '../helpers/platform.ts';
import { createTestDatabase } from '../helpers/postgres.ts';

let platform: Platform;
let dropDb: () => Promise<void> = async () => {};
const children: ChildProcess[] = [];

/** The CLI with another token (MINIPAAS_TOKEN), or the admin token. */
function cli(args: string[], token?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...platform.env, ...(token ? { MINIPAAS_TOKEN: token } : {}) };
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      env,
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const ok = async (args: string[], token?: string) => {
  const r = await cli(args, token);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
};

beforeAll(async () => {
  const db = await createTestDatabase('accesscli');
  dropDb = db.drop;
  platform = await startPlatform({ DATABASE_URL: db.url });
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await platform?.stop();
  await dropDb();
});

describe('access control from the CLI', () => {
  let token = '';
  let tokenId = '';

  it('creates a user, a team with a member and a project of the team', async () => {
    const u = JSON.parse((await ok(['users:create', 'ada@example.com', '--name', 'Ada', '--json'])).stdout);
    expect(u).toMatchObject({ email: 'ada@example.com', teams: [] });
    await ok(['teams:create', 'Shop team', '--slug', 'shop']);
    const add = await ok(['teams:add-member', 'shop', 'ada@example.com', '--role', 'developer']);
    expect(add.stdout).toContain('ada@example.com is developer in shop.');
    const members = await ok(['teams:members', 'shop']);
    expect(members.stdout).toMatch(/ada@example\.com\s+Ada\s+developer/);
    const teams = await ok(['teams']);
    expect(teams.stdout).toMatch(/shop\s+Shop team\s+owner/);
    expect(teams.stdout).toMatch(/default\s+Default\s+owner/);
    await ok(['projects', 'create', 'Storefront', '--slug', 'storefront', '--team', 'shop']);
    await ok(['apps:create', 'shopfront', '--project', 'storefront']);
    const users = await ok(['users']);
    expect(users.stdout).toMatch(/ada@example\.com\s+Ada\s+shop:developer/);
  });

  it('creates a scoped, expiring token that sees only its project, lists and revokes it', async () => {
    const t = JSON.parse(
      (
        await ok([
          'tokens:create',
          'ci',
          '--role',
          'viewer',
          '--project',
          'storefront',
          '--expires',
          '7d',
          '--json',
        ])
      ).stdout,
    ) as { token: string; id: string; role: string; expiresAt: string };
    token = t.token;
    tokenId = t.id;
    expect(t.role).toBe('viewer');
    expect(Date.parse(t.expiresAt)).toBeGreaterThan(Date.now() + 6 * 86_400_000);
    const apps = await ok(['apps', '--json'], token);
    expect((JSON.parse(apps.stdout) as { apps: { name: string }[] }).apps.map((a) => a.name)).toEqual([
      'shopfront',
    ]);
    // A viewer token cannot scale; another project's app is not found.
    const scale = await cli(['scale', 'shopfront', 'web=2'], token);
    expect(scale.code).not.toBe(0);
    expect(scale.stderr.trim().split('\n')).toHaveLength(1);
    expect(scale.stderr).toContain('needs the developer role');
    const list = await ok(['tokens']);
    expect(list.stdout).toContain(tokenId);
    expect(list.stdout).not.toContain(token);
    await ok(['tokens:revoke', tokenId]);
    const after = await cli(['apps'], token);
    expect(after.code).not.toBe(0);
    expect(after.stderr.trim().split('\n')).toHaveLength(1);
    expect(after.stderr).toContain('revoked');
  });

  it('refuses bad input with one line', async () => {
    for (const args of [
      ['tokens:create', 'x', '--role', 'god'],
      ['tokens:create', 'x', '--expires', 'soonish'],
      ['teams:add-member', 'shop', 'nobody@example.com', '--role', 'viewer'],
      ['teams:members', 'no-such-team'],
      ['audit', '-n', '0'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('shows the audit log, and follows it', async () => {
    const audit = await ok(['audit', '--action', 'token:*', '--json']);
    const entries = (JSON.parse(audit.stdout) as { entries: { action: string; outcome: string }[] }).entries;
    expect(entries.map((e) => e.action)).toEqual(expect.arrayContaining(['token:create', 'token:revoke']));
    const denied = await ok(['audit', '--outcome', 'denied']);
    expect(denied.stdout).toContain('app:scale');
    const follower = spawn(process.execPath, [CLI_BIN, 'audit', '-f', '-n', '1', '--json'], {
      env: platform.env,
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(follower);
    let out = '';
    follower.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await waitFor('the first entry', async () => out.includes('\n'));
    await ok(['teams:create', 'Followed']);
    await waitFor('the followed entry', async () => out.includes('"team:create"'), 30_000);
    follower.kill('SIGINT');
    const help = await ok(['audit', '--help']);
    expect(help.stdout).toContain('Examples:');
    // Its OS user goes with the app.
    await ok(['apps', 'destroy', 'shopfront', '--confirm', 'shopfront']);
  });
});
