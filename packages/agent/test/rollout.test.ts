import { AgentClient } from '@minipaas/runtime-process';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { alive, makeHome, NODE, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

/** Runs GET requests against the router in a loop (keep-alive and fresh connections, some slow) until stopped. */
function requestLoop(port: number, host: string) {
  const dispatcher = new Agent({ connections: 8 });
  const stats = { ok: 0, failed: 0, errors: [] as string[], releases: new Set<string>() };
  let running = true;
  const worker = async (n: number) => {
    while (running) {
      try {
        const res = await request(`http://127.0.0.1:${port}/?delay=${n === 0 ? 150 : 0}`, {
          headers: { host, ...(n === 3 ? { connection: 'close' } : {}) },
          dispatcher,
        });
        const text = await res.body.text();
        if (res.statusCode === 200) {
          stats.ok++;
          stats.releases.add((JSON.parse(text) as { release: string }).release);
        } else {
          stats.failed++;
          stats.errors.push(`${res.statusCode} ${text.slice(0, 80)}`);
        }
      } catch (err) {
        stats.failed++;
        stats.errors.push((err as Error).message);
      }
    }
  };
  const done = Promise.all([0, 1, 2, 3].map(worker));
  return {
    stats,
    async stop() {
      running = false;
      await done;
      await dispatcher.close();
      return stats;
    },
  };
}

describe('zero-downtime rollouts', () => {
  let home: string;
  let agent: AgentHandle;
  let client: AgentClient;
  let port: number;

  beforeAll(async () => {
    home = makeHome();
    agent = await startTestAgent(home);
    client = new AgentClient({ home });
    port = agent.router?.port as number;
    await client.putApp(
      webSpec(home, 'roll', 'v1', { processes: { web: { command: `${NODE} web.js`, instances: 2 } } }),
    );
    await waitFor(async () => (await client.getApp('roll'))?.rollout.status === 'ready', 20_000, 'v1 ready');
  });

  afterAll(async () => {
    await client?.close();
    await agent?.close();
    removeHome(home);
  });

  it('rolls to a new release with zero failed requests and stops the old instances', async () => {
    const old = (await client.getApp('roll'))?.instances.map((i) => i.pid as number) ?? [];
    const loop = requestLoop(port, 'roll.localhost');
    await waitFor(() => loop.stats.ok > 20, 10_000, 'traffic');
    const put = await client.putApp(
      webSpec(home, 'roll', 'v2', { processes: { web: { command: `${NODE} web.js`, instances: 2 } } }),
    );
    expect(put.rollout).toMatchObject({ release: 'v2', status: 'rolling' });
    await waitFor(async () => (await client.getApp('roll'))?.rollout.status === 'ready', 20_000, 'v2 ready');
    await waitFor(() => old.every((p) => !alive(p)), 15_000, 'old instances stopped');
    const okBefore = loop.stats.ok;
    await waitFor(() => loop.stats.ok > okBefore + 20, 10_000, 'traffic after');
    const stats = await loop.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect([...stats.releases].sort()).toEqual(['v1', 'v2']);
    const s = await client.getApp('roll');
    expect(s?.release).toBe('v2');
    expect(s?.instances.map((i) => i.release)).toEqual(['v2', 'v2']);
    const lines = await client.logs('roll', { tail: 500 });
    // old instances were drained, then stopped with SIGTERM (they closed cleanly)
    expect(lines.filter((l) => /SIGTERM: closing/.test(l.line)).length).toBe(2);
  });

  it('a bad release fails with its log tail while the old one keeps serving', async () => {
    const before = await client.getApp('roll');
    const loop = requestLoop(port, 'roll.localhost');
    await client.putApp(
      webSpec(home, 'roll', 'v3', { processes: { web: { command: `${NODE} crash.js`, instances: 2 } } }),
    );
    const failed = await waitFor(async () => {
      const s = await client.getApp('roll');
      return s?.rollout.status === 'failed' ? s : null;
    });
    const stats = await loop.stop();
    expect(stats.failed).toBe(0);
    expect([...stats.releases]).toEqual(['v2']);
    expect(failed.rollout.release).toBe('v3');
    expect(failed.rollout.error).toMatch(/exited with code 1/);
    expect(failed.rollout.logTail).toContain('fatal: DATABASE_URL is not set');
    expect(failed.release).toBe('v2');
    await waitFor(
      async () => (await client.getApp('roll'))?.instances.length === 2,
      10_000,
      'failed instances gone',
    );
    const after = await client.getApp('roll');
    expect(after?.instances.map((i) => i.pid)).toEqual(before?.instances.map((i) => i.pid));
  });

  it('restart is a rolling restart with new processes and no failed requests', async () => {
    const before = (await client.getApp('roll'))?.instances.map((i) => i.pid) ?? [];
    const loop = requestLoop(port, 'roll.localhost');
    await waitFor(() => loop.stats.ok > 10, 10_000, 'traffic');
    const r = await client.restartApp('roll');
    expect(r.rollout.status).toBe('rolling');
    await waitFor(async () => {
      const s = await client.getApp('roll');
      return (
        s?.rollout.status === 'ready' &&
        s.instances.length === 2 &&
        s.instances.every((i) => !before.includes(i.pid))
      );
    });
    const stats = await loop.stop();
    expect(stats.errors).toEqual([]);
  });

  it('a changed env rolls, a changed count only scales', async () => {
    const s0 = await client.getApp('roll');
    const spec = webSpec(home, 'roll', 'v2', {
      env: { GREETING: 'changed' },
      processes: { web: { command: `${NODE} web.js`, instances: 2 } },
    });
    await client.putApp(spec);
    const s1 = await waitFor(async () => {
      const s = await client.getApp('roll');
      return s?.rollout.status === 'ready' && s.instances.length === 2 ? s : null;
    });
    expect(s1.instances.some((i) => s0?.instances.some((o) => o.pid === i.pid))).toBe(false);
    const scaled = await client.putApp({
      ...spec,
      processes: { web: { command: `${NODE} web.js`, instances: 3 } },
    });
    expect(scaled.rollout.status).toBe('ready');
    expect(scaled.instances.filter((i) => s1.instances.some((o) => o.pid === i.pid))).toHaveLength(2);
  });
});

describe('rollout timeout', () => {
  let home: string;
  let agent: AgentHandle;
  let client: AgentClient;

  beforeAll(async () => {
    home = makeHome();
    agent = await startTestAgent(home, { env: { MINIPAAS_START_TIMEOUT_MS: '1500' } });
    client = new AgentClient({ home });
  });

  afterAll(async () => {
    await client?.close();
    await agent?.close();
    removeHome(home);
  });

  it('fails a release whose web process never listens on PORT', async () => {
    await client.putApp(
      webSpec(home, 'deaf', 'v1', { processes: { web: { command: `${NODE} worker.js`, instances: 1 } } }),
    );
    const s = await waitFor(async () => {
      const st = await client.getApp('deaf');
      return st?.rollout.status === 'failed' ? st : null;
    });
    expect(s.rollout.error).toMatch(/not healthy within 1500ms/);
    expect(s.rollout.logTail?.some((l) => l.startsWith('tick'))).toBe(true);
    await waitFor(
      async () => (await client.getApp('deaf'))?.instances.every((i) => i.pid === null),
      10_000,
      'stopped',
    );
  });

  it('uses the HTTP health check path when set', async () => {
    await client.putApp(webSpec(home, 'sick', 'v1', { healthcheck: { path: '/unhealthy', timeoutMs: 500 } }));
    const s = await waitFor(async () => {
      const st = await client.getApp('sick');
      return st?.rollout.status === 'failed' ? st : null;
    });
    expect(s.rollout.error).toMatch(/not healthy within/);
    await client.putApp(webSpec(home, 'sick', 'v2', { healthcheck: { path: '/health', timeoutMs: 500 } }));
    await waitFor(async () => (await client.getApp('sick'))?.rollout.status === 'ready', 10_000, 'healthy');
  });
});
