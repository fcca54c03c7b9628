/**
 * The real `minipaas` bin as a child process against the real platform (supervisor, agent, minipaasd):
 * lifecycle (`up -d`, `down`), login, directory deploys honouring .gitignore, seed-004 command deploys,
 * env, logs -f, destroy, and the one-line error contract.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_BIN,
  type CliResult,
  isAlive,
  type Platform,
  platformEnv,
  routerGet,
  startPlatform,
  waitFor,
} from '../../../test/helpers/platform.ts';

function run(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<CliResult> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI_BIN, ...args], { env, cwd, timeout: 120_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function oneErrorLine(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  return lines[0] as string;
}

/** True when the process is gone or a zombie. */
async function gone(pid: number): Promise<boolean> {
  if (!isAlive(pid)) return true;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** A world-readable temp dir (apps may run as an unprivileged user when the tests run as root). */
async function appDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

describe('minipaas up -d / down', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let apiPort: number;
  let routerPort: number;

  beforeAll(async () => {
    ({ home, env, apiPort, routerPort } = await platformEnv('mp-cli-'));
  });

  afterAll(async () => {
    await run(['down'], env);
    await rm(home, { recursive: true, force: true });
  });

  it('starts in the background, reports where things are, and is idempotent', async () => {
    const up = await run(['up', '-d', '--timeout', '60'], env);
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    expect(up.stdout).toContain(`http://127.0.0.1:${apiPort}`);
    expect(up.stdout).toContain(`http://localhost:${routerPort}`);
    expect(up.stdout).toContain(join(home, 'admin-token'));
    const pid = Number((await readFile(join(home, 'run', 'minipaas.pid'), 'utf8')).trim());
    expect(isAlive(pid)).toBe(true);
    expect((await fetch(`http://127.0.0.1:${apiPort}/health/ready`)).status).toBe(200);

    const again = await run(['up', '-d'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`already running (supervisor pid ${pid})`);

    const status = await run(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ apps: { total: 0 } });
  });

  it('stops everything with down, then reports a clear error for API commands', async () => {
    const pid = Number((await readFile(join(home, 'run', 'minipaas.pid'), 'utf8')).trim());
    const down = await run(['down'], env);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain('MiniPaaS stopped.');
    // the detached supervisor is reparented; until its new parent reaps it, it may linger as a zombie
    await waitFor('the supervisor to exit', async () => gone(pid), 5000);
    await expect(fetch(`http://127.0.0.1:${apiPort}/health`)).rejects.toThrow();

    const again = await run(['down'], env);
    expect(again.stdout).toContain('MiniPaaS is not running.');

    const apps = await run(['apps'], env);
    expect(apps.code).toBe(1);
    expect(oneErrorLine(apps)).toBe(
      `error: cannot reach the MiniPaaS API at http://127.0.0.1:${apiPort} — is it running? (minipaas up)`,
    );
  });
});

describe('against a running platform', () => {
  let p: Platform;

  beforeAll(async () => {
    p = await startPlatform();
  }, 90_000);

  afterAll(async () => {
    await p?.stop();
  });

  it('logs in with the local admin token and saves the login with mode 0600', async () => {
    const bad = await p.cli(['login', '--token', 'mp_wrong']);
    expect(bad.code).toBe(1);
    oneErrorLine(bad);

    const r = await p.cli(['login']);
    expect(r.code, r.stderr).toBe(0);
    const file = join(p.home, 'xdg', 'minipaas', 'credentials.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ url: p.apiUrl, token: p.token });
    const who = await p.cli(['whoami', '--json']);
    expect(JSON.parse(who.stdout)).toMatchObject({
      url: p.apiUrl,
      tokenSource: 'saved',
      token: { role: expect.any(String) },
    });
  });

  it('deploys a directory without the files .gitignore excludes', async () => {
    const dir = await appDir('mp-cli-site-');
    await writeFile(join(dir, 'index.html'), '<h1>site</h1>');
    await writeFile(join(dir, '.gitignore'), 'secret.txt\n');
    await writeFile(join(dir, 'secret.txt'), 'do not upload');
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', '.gitignore'), 'private.html\n');
    await writeFile(join(dir, 'sub', 'private.html'), 'private');
    await writeFile(join(dir, 'sub', 'public.html'), 'public');
    await mkdir(join(dir, 'node_modules'));
    await writeFile(join(dir, 'node_modules', 'x.js'), 'x');

    const r = await p.cli(['deploy', dir, '--app', 'site', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'running', appName: 'site' });
    expect(r.stderr).toMatch(/Packing .*: 4 files/); // .gitignore, index.html, sub/.gitignore, sub/public.html

    const get = (path: string) => routerGet(p.routerPort, `/apps/site${path}`, `localhost:${p.routerPort}`);
    expect((await get('/')).body).toContain('site');
    expect((await get('/sub/public.html')).status).toBe(200);
    expect((await get('/secret.txt')).status).toBe(404);
    expect((await get('/sub/private.html')).status).toBe(404);
    expect((await get('/node_modules/x.js')).status).toBe(404);
  });

  it('deploys a local program given as one argument (seed 004) and follows its logs', async () => {
    const dir = await appDir('mp-cli-prog-');
    await writeFile(
      join(dir, 'my-app'),
      `#!/usr/bin/env node\nrequire('node:http').createServer((q, s) => { console.log('hit ' + q.url); s.end('my-app-ok'); }).listen(process.env.PORT);\n`,
    );
    await chmod(join(dir, 'my-app'), 0o755);
    const noApp = await p.cli(['deploy', './my-app'], { cwd: dir });
    expect(noApp.code).toBe(1);
    expect(oneErrorLine(noApp)).toMatch(/needs --app/);

    const r = await p.cli(['deploy', './my-app', '--app', 'prog'], { cwd: dir });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain(`http://prog.localhost:${p.routerPort}/`);

    let out = '';
    const follower: ChildProcess = spawn(process.execPath, [CLI_BIN, 'logs', 'prog', '-f', '-n', '0'], {
      env: p.env,
    });
    follower.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      await waitFor('the log stream', async () => {
        const res = await routerGet(p.routerPort, '/marker-1', `prog.localhost:${p.routerPort}`);
        expect(res.body).toBe('my-app-ok');
        return out.includes('hit /marker-1');
      });
      expect(out).toMatch(/^\S+ prog-web-\S+ \| hit \/marker-1$/m);
    } finally {
      const exited = new Promise<number | null>((r) => follower.once('exit', (code) => r(code)));
      follower.kill('SIGINT');
      expect(await exited).toBe(0);
    }
  });

  it('sets and unsets env vars', async () => {
    expect((await p.cli(['env:set', 'prog', 'GREETING=hi there', 'URL=a=b'])).code).toBe(0);
    const env = await p.cli(['env', 'prog', '--json']);
    expect(JSON.parse(env.stdout)).toMatchObject({ GREETING: 'hi there', URL: 'a=b' });
    expect((await p.cli(['env:unset', 'prog', 'GREETING'])).code).toBe(0);
    expect(JSON.parse((await p.cli(['env', 'prog', '--json'])).stdout)).not.toHaveProperty('GREETING');
    const bad = await p.cli(['env:set', 'prog', '1BAD=x']);
    expect(bad.code).toBe(1);
    oneErrorLine(bad);
  });

  it('refuses to destroy without confirmation, then destroys', async () => {
    const refused = await p.cli(['apps', 'destroy', 'site']);
    expect(refused.code).toBe(1);
    expect(oneErrorLine(refused)).toContain('--confirm site');
    const ok = await p.cli(['apps', 'destroy', 'site', '--confirm', 'site']);
    expect(ok.code, ok.stderr).toBe(0);
    const info = await p.cli(['apps', 'info', 'site']);
    expect(info.code).toBe(1);
    expect(oneErrorLine(info)).toMatch(/not found/);
  });

  it('refuses a directory with nothing to deploy before creating the app', async () => {
    const empty = await appDir('mp-cli-empty-');
    const onlyIgnored = await appDir('mp-cli-ignored-');
    await mkdir(join(onlyIgnored, 'node_modules'));
    await writeFile(join(onlyIgnored, 'node_modules', 'x.js'), 'x');
    const noStack = await appDir('mp-cli-nostack-');
    await writeFile(join(noStack, 'README.md'), 'nothing to run here');
    for (const [dir, app, re] of [
      [empty, 'empty-dir', /nothing to deploy/],
      [onlyIgnored, 'ignored-dir', /nothing to deploy/],
      [noStack, 'nostack-dir', /Procfile/],
    ] as const) {
      const r = await p.cli(['deploy', dir, '--app', app]);
      expect(r.code, app).toBe(1);
      expect(oneErrorLine(r)).toMatch(re);
      const info = await p.cli(['apps', 'info', app]);
      expect(info.code, `${app} was created`).toBe(1);
      expect(oneErrorLine(info)).toMatch(/not found/);
    }
  });

  it('prints JSON for read commands and one-line errors for bad input', async () => {
    const apps = JSON.parse((await p.cli(['apps', '--json'])).stdout) as { apps: Array<{ name: string }> };
    expect(apps.apps.map((a) => a.name)).toContain('prog');
    expect(JSON.parse((await p.cli(['ps', 'prog', '--json'])).stdout).instances).toHaveLength(1);
    expect(JSON.parse((await p.cli(['projects', '--json'])).stdout).projects[0]).toHaveProperty('slug');
    for (const args of [
      ['scale', 'prog', 'web=lots'],
      ['apps', 'create', 'Bad_Name'],
      ['logs', 'nope'],
      ['deploy', 'no/such/dir', '--app', 'x'],
    ]) {
      const r = await p.cli(args);
      expect(r.code, args.join(' ')).toBe(1);
      oneErrorLine(r);
    }
  });
});
