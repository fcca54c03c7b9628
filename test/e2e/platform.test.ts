/**
 * End-to-end: the real `minipaas up` (supervisor, agent, control plane) driven by the real CLI, as a new
 * user would, on the embedded default (PGlite + process runtime).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppView, InstanceInfo } from '@minipaas/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, type Platform, ROOT, routerGet, startPlatform, waitFor } from '../helpers/platform.ts';

let p: Platform;

beforeAll(async () => {
  p = await startPlatform();
}, 90_000);

afterAll(async () => {
  await p?.stop();
});

async function instances(app: string): Promise<InstanceInfo[]> {
  const r = await p.cli(['ps', app, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const parsed = JSON.parse(r.stdout) as InstanceInfo[] | { instances: InstanceInfo[] };
  return Array.isArray(parsed) ? parsed : parsed.instances;
}

describe('deploy, route, restart, scale, logs', () => {
  it('deploys examples/hello-node and serves it by host and by path', async () => {
    const r = await p.cli(['deploy', join(ROOT, 'examples', 'hello-node'), '--app', 'hello']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain(`hello.localhost:${p.routerPort}`);
    const byHost = await routerGet(p.routerPort, '/', `hello.localhost:${p.routerPort}`);
    expect(byHost.status).toBe(200);
    expect(byHost.body).toContain('Hello from MiniPaaS');
    const byPath = await routerGet(p.routerPort, '/apps/hello/', `localhost:${p.routerPort}`);
    expect(byPath.status).toBe(200);
    expect(byPath.body).toContain('Hello from MiniPaaS');
    expect(byPath.body).toContain('path /'); // prefix stripped
    const unknown = await routerGet(p.routerPort, '/', `nope.localhost:${p.routerPort}`);
    expect(unknown.status).toBe(404);
  });

  it('restarts a kill -9ed instance and shows the restart count and signal', async () => {
    const [before] = await instances('hello');
    expect(before?.status).toBe('running');
    process.kill(before?.pid as number, 'SIGKILL');
    const after = await waitFor('a new running process', async () => {
      const [i] = await instances('hello');
      return i && i.status === 'running' && i.pid !== before?.pid ? i : null;
    });
    expect(after.restarts).toBe(1);
    expect(after.lastExitSignal).toBe('SIGKILL');
    const page = await routerGet(p.routerPort, '/', `hello.localhost:${p.routerPort}`);
    expect(page.body).toContain(`pid ${after.pid}`);
  });

  it('scales to three processes on three ports, spreads requests, and scales back', async () => {
    const r = await p.cli(['scale', 'hello', 'web=3']);
    expect(r.code, r.stderr).toBe(0);
    const three = await waitFor('three running instances', async () => {
      const list = (await instances('hello')).filter((i) => i.status === 'running');
      return list.length === 3 ? list : null;
    });
    expect(new Set(three.map((i) => i.port)).size).toBe(3);
    expect(new Set(three.map((i) => i.pid)).size).toBe(3);
    const seen = new Set<string>();
    for (let k = 0; k < 9; k++) {
      const res = await routerGet(p.routerPort, '/', `hello.localhost:${p.routerPort}`);
      seen.add(String(res.headers['x-served-by']));
    }
    expect(seen.size).toBe(3);
    const down = await p.cli(['scale', 'hello', 'web=1']);
    expect(down.code, down.stderr).toBe(0);
    const one = await waitFor('one instance left', async () => {
      const list = await instances('hello');
      return list.filter((i) => i.status === 'running').length === 1 && list.length === 1 ? list : null;
    });
    const gone = three.filter((i) => i.pid !== one[0]?.pid);
    await waitFor('stopped processes to exit', async () => gone.every((i) => !isAlive(i.pid as number)));
  });

  it('shows logs with the app output', async () => {
    const r = await p.cli(['logs', 'hello', '-n', '50']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('hello-node listening on port');
  });

  it('marks an app that exits at once as failed, with its last log lines, and keeps working', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mp-crash-'));
    await writeFile(
      join(dir, 'Procfile'),
      'web: node -e "console.error(\'boom: missing DATABASE_URL\'); process.exit(3)"\n',
    );
    const r = await p.cli(['deploy', dir, '--app', 'crashy'], { timeoutMs: 90_000 });
    expect(r.code).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toContain('boom: missing DATABASE_URL');
    const list = await instances('crashy');
    expect(list.length).toBeGreaterThan(0);
    expect(list.every((i) => i.status === 'failed')).toBe(true);
    expect(list[0]?.lastExitCode).toBe(3);
    const app = await p.api<AppView>('GET', '/api/v1/apps/crashy');
    expect(app.body.status).toBe('failed');
    const hello = await routerGet(p.routerPort, '/', `hello.localhost:${p.routerPort}`);
    expect(hello.status).toBe(200);
    const page = await routerGet(p.routerPort, '/', `crashy.localhost:${p.routerPort}`);
    expect(page.status).toBe(503);
  });

  it('deploys a plain command', async () => {
    const r = await p.cli([
      'deploy',
      '--app',
      'cmd',
      '--',
      'node',
      '-e',
      "require('http').createServer((q,s)=>s.end('cmd-ok')).listen(process.env.PORT)",
    ]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const res = await routerGet(p.routerPort, '/', `cmd.localhost:${p.routerPort}`);
    expect(res.body).toBe('cmd-ok');
  });

  it('deploys a Heroku-style Python app (Procfile with comments, runtime.txt, requirements.txt) unchanged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mp-py-app-'));
    await writeFile(
      join(dir, 'Procfile'),
      '# Heroku Procfile: the web process serves, the worker would run jobs\nweb: python app.py\n\n# worker: python worker.py\n',
    );
    // Heroku's runtime.txt names the host's own Python (there is no other interpreter to pick here).
    const version = execFileSync('python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], {
      encoding: 'utf8',
    }).trim();
    await writeFile(join(dir, 'runtime.txt'), `python-${version}\n`);
    // Nothing to install: the standard library is enough (no package index is reachable here).
    await writeFile(join(dir, 'requirements.txt'), '# no third-party packages\n');
    await writeFile(
      join(dir, 'app.py'),
      [
        'import os, sys',
        'from http.server import BaseHTTPRequestHandler, HTTPServer',
        'class H(BaseHTTPRequestHandler):',
        '    def do_GET(self):',
        '        body = ("py-ok " + sys.prefix + " " + os.environ.get("VIRTUAL_ENV", "-")).encode()',
        '        self.send_response(200); self.end_headers(); self.wfile.write(body)',
        'HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()',
        '',
      ].join('\n'),
    );
    const r = await p.cli(['deploy', dir, '--app', 'pyapp'], { timeoutMs: 180_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/python/i);
    const res = await routerGet(p.routerPort, '/', `pyapp.localhost:${p.routerPort}`);
    expect(res.status).toBe(200);
    // It runs in the release's own virtualenv, moved with the release.
    expect(res.body).toMatch(/^py-ok \S*releases\/pyapp\/v1\/\.minipaas\/venv /);
  }, 240_000);

  it('lists releases and rolls back with the CLI, without a build', async () => {
    const v2 = await p.cli([
      'deploy',
      '--app',
      'cmd',
      '--',
      'node',
      '-e',
      "require('http').createServer((q,s)=>s.end('cmd-v2')).listen(process.env.PORT)",
    ]);
    expect(v2.code, `${v2.stdout}\n${v2.stderr}`).toBe(0);
    expect((await routerGet(p.routerPort, '/', `cmd.localhost:${p.routerPort}`)).body).toBe('cmd-v2');
    const listed = await p.cli(['releases', 'cmd', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const releases = (
      JSON.parse(listed.stdout) as { releases: Array<{ version: number; canRollback: boolean }> }
    ).releases;
    expect(releases.map((r) => [r.version, r.canRollback])).toEqual([
      [2, false],
      [1, true],
    ]);
    const back = await p.cli(['rollback', 'cmd']);
    expect(back.code, `${back.stdout}\n${back.stderr}`).toBe(0);
    expect(back.stdout).toContain('Rolling back to v1 as v3 (no build)');
    expect((await routerGet(p.routerPort, '/', `cmd.localhost:${p.routerPort}`)).body).toBe('cmd-ok');
    const bad = await p.cli(['rollback', 'cmd', 'latest']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('control-plane crash', () => {
  it('drops no request while minipaasd is killed, and re-adopts the same processes', async () => {
    const before = await instances('hello');
    const pidFile = join(p.home, 'run', 'minipaasd.pid');
    const { readFile } = await import('node:fs/promises');
    const serverPid = Number((await readFile(pidFile, 'utf8')).trim());
    let ok = 0;
    let failed = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        try {
          const r = await routerGet(p.routerPort, '/', `hello.localhost:${p.routerPort}`);
          if (r.status === 200) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    process.kill(serverPid, 'SIGKILL');
    // the supervisor restarts minipaasd; wait until the API answers again from a new pid
    await waitFor(
      'minipaasd to come back',
      async () => {
        const pid = Number((await readFile(pidFile, 'utf8').catch(() => '0')).trim());
        if (pid === serverPid || !pid) return false;
        const r = await fetch(`${p.apiUrl}/health/ready`);
        return r.status === 200;
      },
      45_000,
    );
    await new Promise((r) => setTimeout(r, 1500)); // let the reconciler run a pass
    stop = true;
    await loop;
    expect(failed).toBe(0);
    expect(ok).toBeGreaterThan(10);
    const after = await instances('hello');
    expect(after.map((i) => i.pid).sort()).toEqual(before.map((i) => i.pid).sort());
  });
});

describe('bad input gets a clear 4xx', () => {
  it('refuses requests without a valid token', async () => {
    const r = await fetch(`${p.apiUrl}/api/v1/apps`);
    expect(r.status).toBe(401);
    const body = (await r.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/Authorization/);
    const r2 = await fetch(`${p.apiUrl}/api/v1/apps`, {
      headers: { authorization: 'Bearer mp_nottherightoneatallxxxxxxxx' },
    });
    expect(r2.status).toBe(401);
  });

  it('validates names, unknown apps and malformed JSON', async () => {
    const bad = await p.api<{ error: { code: string; message: string } }>('POST', '/api/v1/apps', {
      name: 'Bad_Name!',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/app name/);
    const missing = await p.api<{ error: { code: string } }>('GET', '/api/v1/apps/does-not-exist');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('MINIPAAS_ERR_APP_NOT_FOUND');
    const malformed = await p.api<{ error: { code: string } }>('POST', '/api/v1/apps', '{"name": ');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('MINIPAAS_ERR_BAD_JSON');
    const cli = await p.cli(['ps', 'does-not-exist']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
    expect(cli.stderr).toMatch(/not found/);
  });
});

describe('shutdown', () => {
  it('minipaas up became the lean supervisor (same pid, not the CLI)', async () => {
    const { readFile } = await import('node:fs/promises');
    const pid = p.supervisor.pid;
    expect(pid).toBeDefined();
    expect(Number((await readFile(join(p.home, 'run', 'minipaas.pid'), 'utf8')).trim())).toBe(pid);
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    expect(argv.some((a) => a.endsWith('/packages/cli/bin/minipaas-supervisor.js'))).toBe(true);
    expect(argv.some((a) => a.endsWith('/bin/minipaas.js'))).toBe(false);
  });

  it('SIGTERM to minipaas up stops every app process, the agent and the control plane', async () => {
    const { readFile } = await import('node:fs/promises');
    const pids: number[] = [];
    for (const app of ['hello', 'cmd']) for (const i of await instances(app)) if (i.pid) pids.push(i.pid);
    for (const f of ['agent.pid', 'minipaasd.pid'])
      pids.push(Number((await readFile(join(p.home, 'run', f), 'utf8')).trim()));
    expect(pids.length).toBeGreaterThanOrEqual(4);
    expect(pids.every(isAlive)).toBe(true);
    await p.stop();
    expect(p.supervisor.exitCode).toBe(0);
    // exited processes may linger as zombies when nothing reaps them (pid 1 in a container): count those as gone
    const gone = async (pid: number) => {
      if (!isAlive(pid)) return true;
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      return stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
    };
    await waitFor(
      'every process to exit',
      async () => (await Promise.all(pids.map(gone))).every(Boolean),
      15_000,
    );
  });
});
