import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AppSpec, HttpCheck } from '@minipaas/core';
import { AgentClient } from '@minipaas/runtime-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { httpGet, makeHome, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

describe('app.json health checks', () => {
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

  const settled = (name: string, release: string) =>
    waitFor(async () => {
      const s = await client.getApp(name);
      return s && s.rollout.release === release && s.rollout.status !== 'rolling' ? s : null;
    });

  const withChecks = (app: string, version: string, checks: HttpCheck[]): AppSpec =>
    webSpec(home, app, version, { healthcheck: { checks } });

  it('a release goes live once its startup and readiness checks pass; a content mismatch fails the next one and the old keeps serving', async () => {
    await client.putApp(
      withChecks('checked', 'v1', [
        { type: 'startup', path: '/', content: 'hello from v1', attempts: 3, waitMs: 200 },
        { type: 'readiness', path: '/live', content: 'alive', attempts: 3, waitMs: 200 },
      ]),
    );
    const v1 = await settled('checked', 'v1');
    expect(v1.rollout.status).toBe('ready');
    const lines = (await client.logs('checked', { tail: 50 })).map((l) => l.line);
    expect(lines.some((l) => /app\.json checks passed/.test(l))).toBe(true);

    await client.putApp(
      withChecks('checked', 'v2', [
        { type: 'startup', path: '/', content: 'ok-marker', attempts: 3, waitMs: 200 },
      ]),
    );
    const v2 = await settled('checked', 'v2');
    expect(v2.rollout.status).toBe('failed');
    expect(v2.rollout.error).toBe('startup check /: body does not contain "ok-marker" (3 attempts)');
    expect(v2.release).toBe('v1');
    const res = await httpGet(routerPort, '/', 'checked.localhost');
    expect((JSON.parse(res.body) as { release: string }).release).toBe('v1');
    await client.deleteApp('checked');
  });

  it('a check whose path answers an error status fails the first rollout with the reason', async () => {
    await client.putApp(
      withChecks('notfound', 'v1', [{ type: 'readiness', path: '/unhealthy', attempts: 2, waitMs: 100 }]),
    );
    const s = await settled('notfound', 'v1');
    expect(s.rollout.status).toBe('failed');
    expect(s.rollout.error).toBe('readiness check /unhealthy: answered 503 (2 attempts)');
    expect(s.release).toBeNull();
    await client.deleteApp('notfound');
  });

  it('liveness checks restart an instance after `attempts` consecutive failures', async () => {
    const spec = withChecks('lively', 'v1', [{ type: 'liveness', path: '/live', attempts: 2, waitMs: 50 }]);
    await client.putApp(spec);
    const s = await settled('lively', 'v1');
    expect(s.rollout.status).toBe('ready');
    const first = s.instances[0];
    writeFileSync(join(spec.dir, 'dead'), '');
    const restarted = await waitFor(async () => {
      const st = await client.getApp('lively');
      const i = st?.instances[0];
      return i && i.restarts > 0 ? i : null;
    });
    rmSync(join(spec.dir, 'dead'));
    expect(restarted.id).toBe(first?.id);
    const lines = (await client.logs('lively', { tail: 100 })).map((l) => l.line);
    expect(
      lines.some((l) => /liveness check \/live: answered 500 \(2 attempts\); restarting it/.test(l)),
    ).toBe(true);
    const back = await waitFor(async () => {
      const st = await client.getApp('lively');
      return st?.instances[0]?.status === 'running' ? st : null;
    });
    expect(back.instances[0]?.pid).not.toBe(first?.pid);
    await client.deleteApp('lively');
  });

  it('validates checks', async () => {
    const bad: HttpCheck[][] = [
      [{ type: 'startup', path: 'nope' }],
      [{ type: 'startup', path: '/', attempts: 101 }],
      [{ type: 'startup', path: '/', timeoutMs: 600_001 }],
      [{ type: 'startup', path: '/', content: 'x'.repeat(1025) }],
      [{ type: 'sometimes' as 'startup', path: '/' }],
    ];
    for (const checks of bad) {
      await expect(client.putApp(withChecks('invalid', 'v1', checks))).rejects.toMatchObject({
        code: 'MINIPAAS_ERR_VALIDATION',
      });
    }
  });
});
