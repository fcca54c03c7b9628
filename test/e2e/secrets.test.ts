/**
 * Secrets end to end through the real CLI on a real platform (`minipaas up`): `env:set --secret` and
 * `env:import --secret`, the app receiving the values, masked in `minipaas env`, in the app's own log
 * output and in the deploy log (release phase), shown with `--reveal`; then the plaintext is searched for in
 * every file under MINIPAAS_HOME (the embedded PostgreSQL data files and WAL, the agent's state, the logs,
 * backups), in every row of every table of the platform database, and in the platform's own log output:
 * it must be nowhere. `secrets:rotate-key` seals everything again and the app keeps its values.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesContaining, rowsContaining as rowsIn } from '../helpers/plaintext-search.ts';
import { type Platform, routerGet, startPlatform } from '../helpers/platform.ts';

let p: Platform;
let work: string;
const TOKEN = `tok_${randomBytes(16).toString('hex')}`;
const IMPORTED = `imp_${randomBytes(16).toString('hex')}`;
/** A config var (plaintext by design): the positive control that the searches below do find things. */
const GREETING = `hello_${randomBytes(8).toString('hex')}`;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const SERVER = `
const http = require('node:http');
const crypto = require('node:crypto');
const h = (s) => crypto.createHash('sha256').update(s || '').digest('hex');
console.log('starting with token ' + process.env.API_TOKEN);
http.createServer((req, res) => {
  console.log('request sees ' + process.env.API_TOKEN + ' and ' + process.env.IMPORTED_KEY);
  res.end(h(process.env.API_TOKEN) + ' ' + h(process.env.IMPORTED_KEY) + ' ' + process.env.GREETING);
}).listen(Number(process.env.PORT));
`;

async function ok(args: string[]): Promise<string> {
  const r = await p.cli(args, { timeoutMs: 120_000 });
  expect(r.code, `minipaas ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout + r.stderr;
}

const rowsContaining = (needle: string) => rowsIn(p, needle);

beforeAll(async () => {
  p = await startPlatform();
  work = await mkdtemp(join(tmpdir(), 'mp-e2e-sec-'));
}, 90_000);

afterAll(async () => {
  await p?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('secrets through the CLI', () => {
  it('reach the app, are masked everywhere, and are stored nowhere in plaintext; rotation keeps them', async () => {
    await ok(['apps', 'create', 'sec']);
    await ok(['env:set', 'sec', `GREETING=${GREETING}`]);
    // The space form (`env set`) and the colon form (`env:import`) both work.
    expect(await ok(['env', 'set', 'sec', '--secret', `API_TOKEN=${TOKEN}`])).toContain(
      'Set secret API_TOKEN',
    );
    await writeFile(join(work, '.env'), `# imported\nIMPORTED_KEY="${IMPORTED}"\n`);
    expect(await ok(['env:import', 'sec', join(work, '.env'), '--secret'])).toContain('Imported 1 secret');

    const app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'server.js'), SERVER);
    await writeFile(join(app, 'Procfile'), 'web: node server.js\nrelease: echo release sees $API_TOKEN\n');
    const deployed = await ok(['deploy', app, '--app', 'sec']);
    expect(deployed).toContain('release sees ********');
    expect(deployed).not.toContain(TOKEN);

    const host = `sec.localhost:${p.routerPort}`;
    expect((await routerGet(p.routerPort, '/', host)).body).toBe(
      `${sha(TOKEN)} ${sha(IMPORTED)} ${GREETING}`,
    );

    const shown = await ok(['env', 'sec']);
    expect(shown).toMatch(/API_TOKEN\s+••••\s+\(secret\)/);
    expect(shown).toMatch(new RegExp(`GREETING\\s+${GREETING}`));
    expect(shown).not.toContain(TOKEN);
    const revealed = JSON.parse(await ok(['env', 'sec', '--reveal', '--json'])) as Record<string, string>;
    expect(revealed).toMatchObject({ API_TOKEN: TOKEN, IMPORTED_KEY: IMPORTED, GREETING });

    const logs = await ok(['logs', 'sec', '-n', '50']);
    expect(logs).toContain('starting with token ********');
    expect(logs).toContain('request sees ******** and ********');
    expect(logs).not.toContain(TOKEN);

    // The searches work: the plaintext config var is in the database rows (and so in its files).
    expect((await rowsContaining(GREETING)).length).toBeGreaterThan(0);
    if (!p.env.DATABASE_URL) expect((await filesContaining(p.home, GREETING)).length).toBeGreaterThan(0);
    for (const secret of [TOKEN, IMPORTED]) {
      expect(await filesContaining(p.home, secret)).toEqual([]);
      expect(await rowsContaining(secret)).toEqual([]);
      expect(p.output()).not.toContain(secret);
    }

    // A new master key: every sealed value is sealed again; a restart still gives the app its secrets.
    const rotated = JSON.parse(await ok(['secrets', 'rotate-key', '--json'])) as {
      kid: string;
      resealed: number;
    };
    expect(rotated.resealed).toBeGreaterThanOrEqual(2);
    await ok(['restart', 'sec']);
    expect((await routerGet(p.routerPort, '/', host)).body).toBe(
      `${sha(TOKEN)} ${sha(IMPORTED)} ${GREETING}`,
    );
    expect(JSON.parse(await ok(['env', 'sec', '--reveal', '--json'])).API_TOKEN).toBe(TOKEN);
    expect(await filesContaining(p.home, TOKEN)).toEqual([]);
    expect(await rowsContaining(TOKEN)).toEqual([]);

    // A config value may not pose as a sealed one.
    const bad = await p.cli(['env:set', 'sec', 'X=mp1.a.b.c.d']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/starts like a sealed secret/);

    // Bad imports exit non-zero with one line and change nothing.
    const before = await ok(['env', 'sec', '--json']);
    await writeFile(join(work, 'bad-name.env'), 'GOOD=1\n1BAD=2\n');
    await writeFile(join(work, 'proto.env'), '__proto__=x\nGOOD=1\n');
    await writeFile(join(work, 'empty.env'), '# nothing\n');
    const cases: Array<[string[], RegExp]> = [
      [['env:import', 'sec', join(work, 'missing.env')], /cannot read .*ENOENT/],
      [['env:import', 'sec', join(work, 'bad-name.env'), '--secret'], /invalid env var name "1BAD"/],
      [['env:import', 'sec', join(work, 'proto.env'), '--secret'], /__proto__|prototype/],
      [['env:import', 'sec', join(work, 'empty.env')], /has no variables/],
      [['env:set', 'sec', '--secret', 'EMPTY='], /./],
    ];
    for (const [args, message] of cases) {
      const r = await p.cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    expect(await ok(['env', 'sec', '--json'])).toBe(before);
  }, 300_000);
});
