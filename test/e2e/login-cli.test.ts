/**
 * `minipaas login` / `logout` against the real platform (`minipaas up`): a password login through
 * --password-stdin creates and saves an API token of that user (never the password), `whoami` uses it,
 * a wrong password fails with one line and saves nothing, `logout` revokes the token on the server.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../packages/server/src/auth/password-hash.ts';
import { CLI_BIN, type CliResult, type Platform, ROOT, startPlatform } from '../helpers/platform.ts';
import { createTestDatabase } from '../helpers/postgres.ts';

const PASSWORD = 'cli password 123';
let platform: Platform;
let dropDb: () => Promise<void> = async () => {};

/** Runs the CLI with `input` on stdin. */
function cli(args: string[], input: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], { env: platform.env, cwd: ROOT });
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
    child.stdin.end(input);
  });
}

beforeAll(async () => {
  const db = await createTestDatabase('logincli');
  dropDb = db.drop;
  platform = await startPlatform({ DATABASE_URL: db.url });
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query(
      "INSERT INTO users (id, email, name, password_hash) VALUES ('ada', 'ada@example.com', 'Ada', $1)",
      [await hashPassword(PASSWORD)],
    );
    await client.query(
      "INSERT INTO team_members (team_id, user_id, role) VALUES ('default', 'ada', 'developer')",
    );
  } finally {
    await client.end();
  }
}, 120_000);

afterAll(async () => {
  await platform?.stop();
  await dropDb();
});

describe('minipaas login with a password', () => {
  const credentials = () => join(platform.env.XDG_CONFIG_HOME as string, 'minipaas', 'credentials.json');

  it('refuses a wrong password with one line and saves nothing', async () => {
    const r = await cli(
      ['login', '--url', platform.apiUrl, '--email', 'ada@example.com', '--password-stdin'],
      'wrong\n',
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('wrong email or password');
    expect(existsSync(credentials())).toBe(false);
  });

  it('saves a token of the user, not the password, and whoami uses it', async () => {
    const r = await cli(
      ['login', '--url', platform.apiUrl, '--email', 'ada@example.com', '--password-stdin', '--json'],
      `${PASSWORD}\n`,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      user: { email: string };
      createdToken: { name: string; expiresAt: string };
    };
    expect(out.user.email).toBe('ada@example.com');
    expect(out.createdToken.name).toMatch(/^minipaas login on /);
    expect(new Date(out.createdToken.expiresAt).getTime()).toBeGreaterThan(Date.now() + 80 * 86_400_000);
    const saved = readFileSync(credentials(), 'utf8');
    expect(saved).not.toContain(PASSWORD);
    const who = await cli(['whoami', '--json'], '');
    expect(who.code).toBe(0);
    const me = JSON.parse(who.stdout) as { tokenSource: string; user: { id: string } };
    expect(me.tokenSource).toBe('saved');
    expect(me.user.id).toBe('ada');
    // The session used to create the token was ended: only the token remains.
    const sessions = await platform.api<{ tokens: Array<{ name: string; userId: string }> }>(
      'GET',
      '/api/v1/tokens?all=true',
    );
    expect(sessions.body.tokens.filter((t) => t.userId === 'ada')).toHaveLength(1);
  });

  it('logout revokes the token on the server and forgets it', async () => {
    const token = (JSON.parse(readFileSync(credentials(), 'utf8')) as { token: string }).token;
    const r = await cli(['logout'], '');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Revoked token "minipaas login on /);
    expect(existsSync(credentials())).toBe(false);
    const res = await fetch(`${platform.apiUrl}/api/v1/whoami`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(401);
  });

  it('has help with examples', async () => {
    const r = await cli(['login', '--help'], '');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--password-stdin');
    expect(r.stdout).toContain('Examples:');
  });
});
