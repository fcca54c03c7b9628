import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentClient } from '@minipaas/runtime-process';
import { WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { canBind } from '../src/port-allocator.ts';
import { type RouterHandle, startRouter } from '../src/router/router.ts';
import { httpGet, makeHome, NODE, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

describe('router in front of real app processes', () => {
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
      webSpec(home, 'echo', 'v1', { processes: { web: { command: `${NODE} web.js`, instances: 2 } } }),
    );
    await client.putApp(
      webSpec(home, 'workeronly', 'v1', {
        processes: { worker: { command: `${NODE} worker.js`, instances: 1 } },
      }),
    );
    await waitFor(
      async () => (await client.getApp('echo'))?.rollout.status === 'ready',
      20_000,
      'echo ready',
    );
    await waitFor(
      async () => (await client.getApp('workeronly'))?.rollout.status === 'ready',
      20_000,
      'worker ready',
    );
  });

  afterAll(async () => {
    await client?.close();
    await agent?.close();
    removeHome(home);
  });

  it('streams request and response bodies both ways', async () => {
    const body = 'x'.repeat(3 * 1024 * 1024);
    const r = await httpGet(port, '/echo', 'echo.localhost', { method: 'POST', body });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(body.length);
    expect(r.body === body).toBe(true);
  });

  it('strips hop-by-hop headers in both directions and keeps the others', async () => {
    const r = await httpGet(port, '/hop', 'echo.localhost', {
      headers: {
        connection: 'x-drop-me',
        'x-drop-me': '1',
        'x-keep-me': '2',
        te: 'trailers',
        'proxy-authorization': 'x',
      },
    });
    const seen = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    expect(seen['x-keep-me']).toBe('2');
    expect(seen['x-drop-me']).toBeUndefined();
    expect(seen.te).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(r.headers['x-custom']).toBe('kept');
    expect(r.headers['x-hop']).toBeUndefined();
  });

  it('replaces an incoming X-Forwarded-For: the router is the edge', async () => {
    const r = await httpGet(port, '/', 'echo.localhost', { headers: { 'x-forwarded-for': '10.1.2.3' } });
    expect((JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-forwarded-for']).toBe(
      '127.0.0.1',
    );
  });

  it('answers 404 for unknown apps, a landing 404 on the bare domain, and 503 without web instances', async () => {
    const unknown = await httpGet(port, '/', 'nope.localhost');
    expect(unknown.status).toBe(404);
    expect(unknown.headers['content-type']).toMatch(/text\/html/);
    expect(unknown.body).toContain('nope');
    expect((await httpGet(port, '/apps/nope/', '127.0.0.1')).status).toBe(404);
    const landing = await httpGet(port, '/', 'localhost');
    expect(landing.status).toBe(404);
    expect(landing.body).toContain('MiniPaaS');
    const unavailable = await httpGet(port, '/', 'workeronly.localhost');
    expect(unavailable.status).toBe(503);
    expect(unavailable.headers['retry-after']).toBe('5');
  });

  it('proxies WebSocket upgrades (by path) to the instances', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/apps/echo/socket`);
    const answers: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => ws.send('ping');
      ws.onmessage = (ev) => {
        answers.push(String(ev.data));
        if (answers.length === 1) ws.send('second');
        else ws.close();
      };
      ws.onclose = () => resolve();
      ws.onerror = () => reject(new Error('websocket error'));
    });
    expect(answers[0]).toMatch(/^echo:ping:\d+$/);
    expect(answers[1]).toMatch(/^echo:second:\d+$/);
  });

  it('rejects a WebSocket upgrade for an unknown app', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/apps/nope/socket`);
    const ok = await new Promise<boolean>((resolve) => {
      ws.onopen = () => resolve(true);
      ws.onerror = () => resolve(false);
    });
    expect(ok).toBe(false);
  });
});

describe('router retries and 502', () => {
  let upstream: Server;
  let upstreamPort: number;
  let deadPort: number;
  let router: RouterHandle;
  const targets = {
    live: { port: 0 as number | null, inFlight: 0 },
    dead: { port: 0 as number | null, inFlight: 0 },
  };
  let mode: 'both' | 'dead' = 'both';

  beforeAll(async () => {
    upstream = createServer((req, res) => res.end(`ok ${req.url}`));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamPort = (upstream.address() as AddressInfo).port;
    deadPort = 20000 + Math.floor(Math.random() * 12000);
    while (!(await canBind(deadPort))) deadPort++;
    targets.live.port = upstreamPort;
    targets.dead.port = deadPort;
    router = await startRouter({
      host: '127.0.0.1',
      port: 0,
      baseDomain: 'localhost',
      resolve: (app) =>
        app === 'x' ? (mode === 'both' ? [targets.dead, targets.live] : [targets.dead]) : null,
    });
  });

  afterAll(async () => {
    await router?.close();
    await new Promise((r) => upstream?.close(r));
  });

  it('retries a refused connection on another instance', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await httpGet(router.port, `/n${i}`, 'x.localhost');
      expect(r.status).toBe(200);
      expect(r.body).toBe(`ok /n${i}`);
    }
    expect(targets.live.inFlight).toBe(0);
    expect(targets.dead.inFlight).toBe(0);
  });

  it('answers a 502 page when no instance answers', async () => {
    mode = 'dead';
    const r = await httpGet(router.port, '/', 'x.localhost');
    expect(r.status).toBe(502);
    expect(r.body).toContain('did not answer');
  });

  it('keeps upstream connections alive', async () => {
    mode = 'both';
    let connections = 0;
    upstream.on('connection', () => connections++);
    await waitFor(async () => (await httpGet(router.port, '/', 'x.localhost')).status === 200);
    const before = connections;
    for (let i = 0; i < 20; i++) await httpGet(router.port, '/', 'x.localhost');
    expect(connections - before).toBeLessThanOrEqual(1);
  });
});
