import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LogLine } from '@minipaas/core';
import { AgentClient } from '@minipaas/runtime-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { httpGet, makeHome, NODE, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

describe('app log capture', () => {
  let home: string;
  let agent: AgentHandle;
  let client: AgentClient;
  let port: number;

  beforeAll(async () => {
    home = makeHome();
    agent = await startTestAgent(home, { env: { MINIPAAS_LOG_MAX_BYTES: '4096', MINIPAAS_LOG_FILES: '2' } });
    client = new AgentClient({ home });
    port = agent.router?.port as number;
    await client.putApp(
      webSpec(home, 'logs', 'v1', {
        env: { SECRET_TOKEN: 'tok-123-secret', PAD: '100', TICK_MS: '10' },
        maskValues: ['tok-123-secret'],
        processes: {
          web: { command: `${NODE} web.js`, instances: 1 },
          worker: { command: `${NODE} worker.js`, instances: 1 },
        },
      }),
    );
    await waitFor(async () => (await client.getApp('logs'))?.rollout.status === 'ready', 20_000, 'ready');
  });

  afterAll(async () => {
    await client?.close();
    await agent?.close();
    removeHome(home);
  });

  it('captures stdout with timestamps, masks secrets and adds system lines', async () => {
    const lines = await waitFor(async () => {
      const l = await client.logs('logs', { tail: 1000, process: 'web' });
      return l.some((x) => x.line.startsWith('token is')) ? l : null;
    });
    const token = lines.find((l) => l.line.startsWith('token is'));
    expect(token?.line).toBe('token is ********');
    expect(token?.stream).toBe('stdout');
    expect(Number.isNaN(Date.parse(token?.ts ?? ''))).toBe(false);
    expect(lines.every((l) => l.processType === 'web')).toBe(true);
    expect(lines.some((l) => l.stream === 'system' && /^starting web/.test(l.line))).toBe(true);
    const raw = JSON.stringify(await client.logs('logs', { tail: 5000 }));
    expect(raw).not.toContain('tok-123-secret');
  });

  it('rotates per-instance files by size and keeps apps.logFiles of them', async () => {
    const worker = (await client.getApp('logs'))?.instances.find((i) => i.processType === 'worker');
    const dir = join(home, 'logs', 'logs');
    await waitFor(() => existsSync(join(dir, `${worker?.id}.log.2`)), 20_000, 'two rotations');
    await new Promise((r) => setTimeout(r, 500));
    const files = readdirSync(dir).filter((f) => f.startsWith(worker?.id ?? '?'));
    expect(files.sort()).toEqual([`${worker?.id}.log`, `${worker?.id}.log.1`, `${worker?.id}.log.2`]);
    const tail = await client.logs('logs', { tail: 30, process: 'worker' });
    expect(tail).toHaveLength(30);
    const ticks = tail.filter((l) => l.line.startsWith('tick')).map((l) => Number(l.line.split(' ')[1]));
    expect(ticks).toEqual([...ticks].sort((a, b) => a - b));
  });

  it('follows new lines until aborted', async () => {
    const ac = new AbortController();
    const got: LogLine[] = [];
    const reading = (async () => {
      for await (const l of client.followLogs('logs', { tail: 1, process: 'web', signal: ac.signal })) {
        got.push(l);
        if (l.line === 'follow-me-2') ac.abort();
      }
    })();
    await waitFor(() => got.length >= 1, 10_000, 'first line');
    expect((await httpGet(port, '/log?line=follow-me-1', 'logs.localhost')).status).toBe(200);
    expect((await httpGet(port, '/log?line=follow-me-2', 'logs.localhost')).status).toBe(200);
    await reading;
    const mine = got.map((l) => l.line).filter((l) => l.startsWith('follow-me'));
    expect(mine).toEqual(['follow-me-1', 'follow-me-2']);
    expect(got.every((l) => l.processType === 'web')).toBe(true);
  });

  it('keeps the logs of stopped instances readable', async () => {
    const before = (await client.getApp('logs'))?.instances.find((i) => i.processType === 'web');
    await client.restartApp('logs');
    await waitFor(async () => {
      const s = await client.getApp('logs');
      return s?.rollout.status === 'ready' && !s.instances.some((i) => i.id === before?.id);
    });
    const lines = await client.logs('logs', { tail: 2000, process: 'web' });
    expect(lines.some((l) => l.instance === before?.id && /stopped/.test(l.line))).toBe(true);
  });
});
