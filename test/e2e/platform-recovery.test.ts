/**
 * End-to-end: the platform after its own processes die (hardening finding 8), with the real programs
 * started by `minipaas up -d`: `up -d` adopts what a SIGKILLed supervisor left, `down` stops every app
 * process even when the supervisor and the agent are dead, and a supervisor that gives up on a
 * crash-looping agent stops the apps instead of leaving them unmanaged. Also: MINIPAAS_HOME, run/ and
 * logs/ are private (finding 9).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { InstanceInfo } from '@minipaas/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, type CliResult, platformEnv, routerGet, waitFor } from '../helpers/platform.ts';

function run(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI_BIN, ...args], { env, timeout: 120_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** True when the process is gone or a zombie (pid 1 may never reap the platform's orphans). */
async function gone(pid: number): Promise<boolean> {
  try {
    const s = await readFile(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function allGone(pids: number[]): Promise<boolean> {
  return (await Promise.all(pids.map(gone))).every(Boolean);
}

/** The app answers `rec-ok <pid of a helper it started>`: the helper shares its process group. */
const APP = [
  'node',
  '-e',
  "const h=require('child_process').spawn(process.execPath,['-e','setInterval(()=>{},1000)'],{stdio:'ignore'});require('http').createServer((q,s)=>s.end('rec-ok '+h.pid)).listen(process.env.PORT)",
];

/** One platform started with `up -d`; `pids` collects every process it ever had, killed at the end. */
class TestPlatform {
  home = '';
  env: NodeJS.ProcessEnv = {};
  routerPort = 0;
  readonly pids = new Set<number>();

  async init(prefix: string): Promise<void> {
    ({ home: this.home, env: this.env, routerPort: this.routerPort } = await platformEnv(prefix));
  }

  cli(args: string[]): Promise<CliResult> {
    return run(args, this.env);
  }

  async pid(name: 'minipaas' | 'minipaasd' | 'agent'): Promise<number> {
    const pid = Number((await readFile(join(this.home, 'run', `${name}.pid`), 'utf8')).trim());
    this.pids.add(pid);
    return pid;
  }

  async up(): Promise<void> {
    const r = await this.cli(['up', '-d', '--timeout', '90']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    for (const n of ['minipaas', 'minipaasd', 'agent'] as const) await this.pid(n);
    await this.postmaster();
  }

  /**
   * The embedded PostgreSQL server's postmaster (first line of its postmaster.pid); 0 when the platform
   * keeps its state in an external server (MINIPAAS_TEST_E2E_DATABASE=external).
   */
  async postmaster(): Promise<number> {
    if (this.env.DATABASE_URL) return 0;
    const text = await readFile(join(this.home, 'postgres', 'data', 'postmaster.pid'), 'utf8');
    const pid = Number(text.split('\n')[0]);
    this.pids.add(pid);
    return pid;
  }

  /** Deploys the app and returns the pids of its instance and of the helper the instance started. */
  async deployApp(): Promise<{ app: number; helper: number }> {
    const r = await this.cli(['deploy', '--app', 'rec', '--', ...APP]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    return this.appPids();
  }

  async appPids(): Promise<{ app: number; helper: number }> {
    const ps = await this.cli(['ps', 'rec', '--json']);
    expect(ps.code, ps.stderr).toBe(0);
    const parsed = JSON.parse(ps.stdout) as InstanceInfo[] | { instances: InstanceInfo[] };
    const list = Array.isArray(parsed) ? parsed : parsed.instances;
    const app = list[0]?.pid;
    expect(app).toBeTypeOf('number');
    const helper = Number((await this.get()).split(' ')[1]);
    this.pids.add(app as number);
    this.pids.add(helper);
    return { app: app as number, helper };
  }

  async get(): Promise<string> {
    const r = await routerGet(this.routerPort, '/', `rec.localhost:${this.routerPort}`);
    expect(r.status, r.body).toBe(200);
    expect(r.body).toMatch(/^rec-ok \d+$/);
    return r.body;
  }

  /** `down`, then SIGKILL to anything still alive, and the home removed. */
  async cleanup(): Promise<void> {
    if (this.home) await this.cli(['down']);
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone: what the tests expect
      }
    }
    if (this.home) await rm(this.home, { recursive: true, force: true });
  }
}

describe('after kill -9 of the supervisor', () => {
  const p = new TestPlatform();

  beforeAll(async () => {
    await p.init('mp-rec-a-');
    // as an older version left them: everything world-readable
    await chmod(p.home, 0o755);
    await mkdir(join(p.home, 'run'), { mode: 0o755 });
    await mkdir(join(p.home, 'logs'), { mode: 0o755 });
    await chmod(join(p.home, 'run'), 0o755);
    await chmod(join(p.home, 'logs'), 0o755);
    await p.up();
  });

  afterAll(async () => {
    await p.cleanup();
  });

  it('keeps MINIPAAS_HOME, run/ and logs/ private', async () => {
    const mode = async (d: string) => (await stat(join(p.home, d))).mode & 0o777;
    expect((await mode('.')) & 0o066).toBe(0); // at most o+x, for apps running as other users
    expect(await mode('run')).toBe(0o700);
    expect((await mode('logs')) & 0o027).toBe(0);
  });

  it('up -d runs the lean supervisor, not the CLI, and hands it no configuration to pass on', async () => {
    const supervisor = await p.pid('minipaas');
    const argv = (await readFile(`/proc/${supervisor}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    expect(argv.slice(-2)[0]).toMatch(/\/packages\/cli\/bin\/minipaas-supervisor\.js$/);
    expect(argv.at(-1)).toBe('--daemonized');
    // the validated configuration reaches the supervisor only, not the agent, minipaasd or the apps
    const environ = async (pid: number) => (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
    expect((await environ(supervisor)).some((e) => e.startsWith('MINIPAAS_SUPERVISOR_CONFIG='))).toBe(true);
    for (const pid of [await p.pid('agent'), await p.pid('minipaasd')])
      expect((await environ(pid)).some((e) => e.startsWith('MINIPAAS_SUPERVISOR_CONFIG='))).toBe(false);
  });

  it('up -d adopts the surviving platform without dropping the app, and down stops everything', async () => {
    const { app, helper } = await p.deployApp();
    const supervisor = await p.pid('minipaas');
    const server = await p.pid('minipaasd');
    const agent = await p.pid('agent');
    const postmaster = await p.postmaster();
    process.kill(supervisor, 'SIGKILL');
    await waitFor('the supervisor to die', () => gone(supervisor), 10_000);

    const up = await p.cli(['up', '-d', '--timeout', '90']);
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    expect(up.stdout).toContain('MiniPaaS is up.');
    const next = await p.pid('minipaas');
    expect(next).not.toBe(supervisor);
    const log = () => readFile(join(p.home, 'logs', 'minipaas.log'), 'utf8');
    expect(await gone(next), await log()).toBe(false);
    expect(await p.pid('minipaasd')).toBe(server); // adopted, not restarted
    expect(await p.pid('agent')).toBe(agent);
    expect(await p.postmaster()).toBe(postmaster);
    expect(await p.get()).toBe(`rec-ok ${helper}`);
    expect(await p.appPids()).toEqual({ app, helper });

    const down = await p.cli(['down']);
    expect(down.code, `${down.stdout}\n${down.stderr}`).toBe(0);
    expect(down.stdout).toContain('MiniPaaS stopped.');
    const all = [...p.pids];
    await waitFor('every process to exit', () => allGone(all), 15_000);
    for (const f of ['minipaas.pid', 'minipaasd.pid', 'agent.pid', 'agent.sock'])
      await expect(stat(join(p.home, 'run', f))).rejects.toThrow();
  });
});

describe('after kill -9 of the supervisor and the agent', () => {
  const p = new TestPlatform();

  beforeAll(async () => {
    await p.init('mp-rec-b-');
    await p.up();
  });

  afterAll(async () => {
    await p.cleanup();
  });

  it('down stops the orphaned app processes, minipaasd, PostgreSQL, and removes the stale files', async () => {
    const { app, helper } = await p.deployApp();
    const supervisor = await p.pid('minipaas');
    const agent = await p.pid('agent');
    process.kill(supervisor, 'SIGKILL');
    await waitFor('the supervisor to die', () => gone(supervisor), 10_000);
    process.kill(agent, 'SIGKILL');
    await waitFor('the agent to die', () => gone(agent), 10_000);
    expect(await allGone([app, helper])).toBe(false);

    const down = await p.cli(['down']);
    expect(down.code, `${down.stdout}\n${down.stderr}`).toBe(0);
    expect(down.stdout).toContain('app process group');
    if (!p.env.DATABASE_URL) expect(down.stdout).toMatch(/Stopping PostgreSQL \(pid \d+\)/);
    expect(down.stdout).toContain('MiniPaaS stopped.');
    const all = [...p.pids];
    await waitFor('every process to exit', () => allGone(all), 15_000);
    for (const f of ['minipaas.pid', 'minipaasd.pid', 'agent.pid', 'agent.sock'])
      await expect(stat(join(p.home, 'run', f))).rejects.toThrow();

    const again = await p.cli(['down']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('MiniPaaS is not running.');
  });
});

describe('when the agent keeps crashing', () => {
  const p = new TestPlatform();
  let blocker: Server | undefined;

  beforeAll(async () => {
    await p.init('mp-rec-c-');
    await p.up();
  });

  afterAll(async () => {
    await new Promise<void>((r) => (blocker ? blocker.close(() => r()) : r()));
    await p.cleanup();
  });

  it('the supervisor gives up, stops the apps and the control plane, and exits non-zero', async () => {
    const { app, helper } = await p.deployApp();
    const supervisor = await p.pid('minipaas');
    const server = await p.pid('minipaasd');
    const agent = await p.pid('agent');
    // Every agent restarted from now on exits at once: something else listens on its socket.
    const socket = join(p.home, 'run', 'agent.sock');
    process.kill(agent, 'SIGKILL');
    await rm(socket, { force: true });
    blocker = createServer((c) => c.destroy());
    await new Promise<void>((r, j) => {
      blocker?.once('error', j);
      blocker?.listen(socket, () => r());
    });

    await waitFor('the supervisor to give up', () => gone(supervisor), 60_000);
    const log = await readFile(join(p.home, 'logs', 'minipaas.log'), 'utf8');
    expect(log).toMatch(/agent exited .* times right after starting/);
    await waitFor('the apps and minipaasd to exit', () => allGone([app, helper, server]), 15_000);
  });
});

describe('when something foreign answers on the API port', () => {
  it('up -d refuses and says what answers and how to fix it', async () => {
    const { home, env, apiPort } = await platformEnv('mp-rec-d-');
    const foreign = createHttpServer((_q, s) => s.end('{"status":"ok"}'));
    await new Promise<void>((r) => foreign.listen(apiPort, '127.0.0.1', () => r()));
    try {
      const up = await run(['up', '-d', '--timeout', '30'], env);
      expect(up.code).not.toBe(0);
      const log = await readFile(join(home, 'logs', 'minipaas.log'), 'utf8');
      expect(log).toContain(`something else answers at http://127.0.0.1:${apiPort} (pid ${process.pid}:`);
      expect(log).toContain('set MINIPAAS_API_PORT');
      await expect(stat(join(home, 'run', 'minipaas.pid'))).rejects.toThrow();
    } finally {
      await new Promise<void>((r) => foreign.close(() => r()));
      await run(['down'], env);
      await rm(home, { recursive: true, force: true });
    }
  });
});
