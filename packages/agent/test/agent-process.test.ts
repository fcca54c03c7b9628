import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { homePaths } from '@minipaas/core';
import { AgentClient } from '@minipaas/runtime-process';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, httpGet, makeHome, NODE, portRange, removeHome, waitFor, webSpec } from './helpers.ts';

const BIN = fileURLToPath(new URL('../bin/minipaas-agent.js', import.meta.url));

interface Running {
  child: ChildProcess;
  exited: Promise<number | null>;
  routerPort: number;
}

const started: ChildProcess[] = [];
const allPids = new Set<number>();

async function startBinary(home: string, routerPort: number): Promise<Running> {
  const range = portRange();
  const child = spawn(NODE, [BIN], {
    env: {
      PATH: process.env.PATH,
      MINIPAAS_HOME: home,
      MINIPAAS_ROUTER_HOST: '127.0.0.1',
      MINIPAAS_ROUTER_PORT: String(routerPort),
      MINIPAAS_APP_PORT_MIN: String(range.min),
      MINIPAAS_APP_PORT_MAX: String(range.max),
      MINIPAAS_STOP_GRACE_MS: '2000',
      MINIPAAS_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  started.push(child);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const client = new AgentClient({ home });
  try {
    const health = await waitFor(async () => await client.health(), 15_000, 'agent up');
    return { child, exited, routerPort: health.router.port };
  } finally {
    await client.close();
  }
}

/** Every pid of the app (instances and the worker's grandchild). */
async function appPids(client: AgentClient, app: string): Promise<number[]> {
  const s = await client.getApp(app);
  const pids = (s?.instances ?? []).map((i) => i.pid).filter((p): p is number => typeof p === 'number');
  const lines = await client.logs(app, { tail: 1000, process: 'worker' });
  const ids = new Set((s?.instances ?? []).map((i) => i.id));
  for (const l of lines.filter((x) => ids.has(x.instance))) {
    const m = /^worker (\d+) child (\d+)/.exec(l.line);
    if (m) pids.push(Number(m[1]), Number(m[2]));
  }
  for (const p of pids) allPids.add(p);
  return [...new Set(pids)];
}

describe('the minipaas-agent binary', () => {
  const homes: string[] = [];

  afterAll(async () => {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const p of allPids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const h of homes) removeHome(h);
  });

  async function deployBoth(home: string, client: AgentClient): Promise<void> {
    await client.putApp(
      webSpec(home, 'both', 'v1', {
        processes: {
          web: { command: `${NODE} web.js`, instances: 2 },
          worker: { command: `${NODE} worker.js`, instances: 1 },
        },
      }),
    );
    await waitFor(async () => (await client.getApp('both'))?.rollout.status === 'ready', 20_000, 'ready');
    await waitFor(
      async () => (await appPids(client, 'both')).length === 4,
      10_000,
      'worker child pid logged',
    );
  }

  it('SIGTERM stops every app process (including grandchildren), removes socket and pid file, exits 0', async () => {
    const home = makeHome();
    homes.push(home);
    const agent = await startBinary(home, 0);
    const client = new AgentClient({ home });
    await deployBoth(home, client);
    expect((await httpGet(agent.routerPort, '/', 'both.localhost')).status).toBe(200);
    const pids = await appPids(client, 'both');
    expect(pids.every(alive)).toBe(true);
    await client.close();
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    const paths = homePaths(home);
    expect(existsSync(paths.agentSocket)).toBe(false);
    expect(existsSync(paths.agentPid)).toBe(false);
    const dead = new AgentClient({ home });
    await expect(dead.health()).rejects.toMatchObject({ code: 'MINIPAAS_ERR_AGENT_UNAVAILABLE' });
    await dead.close();
  });

  it('brings persisted apps back after a restart, and POST /v1/shutdown stops everything', async () => {
    const home = makeHome();
    homes.push(home);
    let agent = await startBinary(home, 0);
    const routerPort = agent.routerPort;
    let client = new AgentClient({ home });
    await deployBoth(home, client);
    const first = await appPids(client, 'both');
    await client.close();

    // The agent dies without cleaning up: its app processes are orphans now.
    agent.child.kill('SIGKILL');
    await agent.exited;
    expect(first.filter(alive).length).toBeGreaterThan(0);

    agent = await startBinary(home, routerPort);
    client = new AgentClient({ home });
    await waitFor(async () => (await client.getApp('both'))?.rollout.status === 'ready', 20_000, 'restored');
    // orphans of the dead agent are gone, the app runs again with new processes and serves
    await waitFor(() => first.every((p) => !alive(p)), 10_000, 'orphans killed');
    const second = await appPids(client, 'both');
    expect(second.some((p) => first.includes(p))).toBe(false);
    expect((await httpGet(routerPort, '/', 'both.localhost')).status).toBe(200);

    expect(await client.shutdown()).toEqual({ ok: true });
    expect(await agent.exited).toBe(0);
    await waitFor(() => second.every((p) => !alive(p)), 5_000, 'all stopped');
    await client.close();
  });
});
