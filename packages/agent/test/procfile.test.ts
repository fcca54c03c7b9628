import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '@minipaas/runtime-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { alive, httpGet, makeHome, NODE, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

describe('Procfile commands run with sh -c semantics', () => {
  let home: string;
  let agent: AgentHandle;
  let client: AgentClient;
  let routerPort: number;

  beforeAll(async () => {
    home = makeHome();
    agent = await startTestAgent(home);
    client = new AgentClient({ home });
    routerPort = agent.router?.port as number;
  });

  afterAll(async () => {
    await client?.close();
    await agent?.close();
    removeHome(home);
  });

  const ready = (name: string) =>
    waitFor(
      async () => {
        const s = await client.getApp(name);
        return s?.rollout.status === 'ready' ? s : s?.rollout.status === 'failed' ? s : null;
      },
      20_000,
      `${name} settled`,
    );

  it('an environment-assignment prefix works and the recorded pid is the app itself', async () => {
    await client.putApp(
      webSpec(home, 'assign', 'v1', {
        processes: { web: { command: `GREETING=assigned NODE_ENV=production ${NODE} web.js`, instances: 1 } },
      }),
    );
    const s = await ready('assign');
    expect(s.rollout).toMatchObject({ status: 'ready' });
    const res = await httpGet(routerPort, '/', 'assign.localhost');
    const who = JSON.parse(res.body) as { pid: number; greeting: string };
    expect(who.greeting).toBe('assigned');
    expect(s.instances[0]?.pid).toBe(who.pid);
    expect(await client.deleteApp('assign')).toEqual({ stopped: 1 });
    expect(alive(who.pid)).toBe(false);
    const lines = (await client.logs('assign', { tail: 50 })).map((l) => l.line);
    expect(lines.some((l) => /SIGTERM: closing/.test(l))).toBe(true);
  });

  it('cd dir && … chains run, and a graceful stop still reaches the app', async () => {
    const spec = webSpec(home, 'chain', 'v1');
    mkdirSync(join(spec.dir, 'sub'));
    spec.processes = {
      web: {
        command: `cd sub && test "$(basename "$PWD")" = sub && NODE_ENV=production ${NODE} ../web.js`,
        instances: 1,
      },
    };
    await client.putApp(spec);
    const s = await ready('chain');
    expect(s.rollout).toMatchObject({ status: 'ready' });
    const res = await httpGet(routerPort, '/', 'chain.localhost');
    expect(res.status).toBe(200);
    const appPid = (JSON.parse(res.body) as { pid: number }).pid;
    expect(await client.deleteApp('chain')).toEqual({ stopped: 1 });
    expect(alive(appPid)).toBe(false);
    const lines = (await client.logs('chain', { tail: 50 })).map((l) => l.line);
    // the app got SIGTERM itself and closed cleanly, well before the SIGKILL deadline
    expect(lines.some((l) => /SIGTERM: closing/.test(l))).toBe(true);
    expect(lines.some((l) => /SIGKILL/.test(l))).toBe(false);
    expect(lines.some((l) => /stopped \(exited with code 0\)/.test(l))).toBe(true);
  });

  it('a failing step of a chain stops the chain and is reported with its exit code', async () => {
    await client.putApp(
      webSpec(home, 'badchain', 'v1', {
        processes: { web: { command: `cd missing-dir && ${NODE} web.js`, instances: 1 } },
      }),
    );
    const s = await ready('badchain');
    expect(s.rollout.status).toBe('failed');
    expect(s.rollout.error).toMatch(/exited with code 2/);
    await client.deleteApp('badchain');
  });
});
