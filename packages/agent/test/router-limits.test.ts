import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RouterHandle, startRouter } from '../src/router/router.ts';
import { waitFor } from './helpers.ts';
import {
  type EchoUpstream,
  hangUp,
  parseResponse,
  type RawConn,
  rawConnect,
  rawRequest,
  sleep,
  startEchoUpstream,
} from './raw-client.ts';

const HEADERS_TIMEOUT = 400;
const REQUEST_TIMEOUT = 1200;
const IDLE_TIMEOUT = 800;

/** Timeouts and connection limits, each on its own router with small settings. */
describe('router timeouts and connection limits', () => {
  let upstream: EchoUpstream;
  const routers: RouterHandle[] = [];
  const conns: RawConn[] = [];

  const start = async (over: Partial<Parameters<typeof startRouter>[0]> = {}) => {
    const r = await startRouter({
      host: '127.0.0.1',
      port: 0,
      baseDomain: 'localhost',
      resolve: (app) => (app === 'x' ? [{ port: upstream.port, inFlight: 0 }] : null),
      headersTimeoutMs: HEADERS_TIMEOUT,
      requestTimeoutMs: REQUEST_TIMEOUT,
      idleTimeoutMs: IDLE_TIMEOUT,
      ...over,
    });
    routers.push(r);
    return r;
  };
  const open = async (port: number, from?: string) => {
    const c = await rawConnect(port, from);
    conns.push(c);
    return c;
  };
  /** Waits until the router closed `c`, at most `ms`. */
  const cut = (c: RawConn, ms: number) =>
    waitFor(() => c.closedAt !== null, ms, 'router closes the connection');

  beforeAll(async () => {
    upstream = await startEchoUpstream();
  });
  afterEach(async () => {
    for (const c of conns.splice(0)) hangUp(c);
    for (const r of routers.splice(0)) await r.close();
  });
  afterAll(async () => {
    await upstream?.close();
  });

  it('answers 408 and closes a connection whose headers do not complete in time', async () => {
    const r = await start();
    const partial = await open(r.port);
    partial.socket.write('GET / HTTP/1.1\r\nHost: x.localhost\r\nX-Slow: ');
    const silent = await open(r.port);
    await cut(partial, 4000);
    await cut(silent, 4000);
    expect(parseResponse(partial.data).status).toBe(408);
    expect(partial.closedByUs || silent.closedByUs).toBe(false);
  });

  it('cuts a request body trickling in after the headers, and the upstream request with it', async () => {
    const r = await start();
    const slow = await open(r.port);
    const t0 = Date.now();
    slow.socket.write('POST /upload HTTP/1.1\r\nHost: x.localhost\r\nContent-Length: 1000\r\n\r\n');
    const drip = setInterval(() => slow.socket.writable && slow.socket.write('a'), 100);
    try {
      await waitFor(() => upstream.open() === 1, 5000, 'request reaches the upstream');
      await cut(slow, 6000);
    } finally {
      clearInterval(drip);
    }
    expect(parseResponse(slow.data).status).toBe(408);
    // The headers came in time and bytes kept coming; the whole request did not come in time.
    expect((slow.closedAt ?? 0) - t0).toBeGreaterThanOrEqual(REQUEST_TIMEOUT - 100);
    await waitFor(() => upstream.open() === 0, 5000, 'upstream request aborted');
  });

  it('closes a keep-alive connection left idle', async () => {
    const r = await start();
    const c = await open(r.port);
    c.socket.write('GET /a HTTP/1.1\r\nHost: x.localhost\r\n\r\n');
    await waitFor(() => c.data.includes('"url":"/a"'), 5000, 'response');
    c.socket.write('GET /b HTTP/1.1\r\nHost: x.localhost\r\n\r\n');
    await waitFor(() => c.data.includes('"url":"/b"'), 5000, 'second response on the same connection');
    // node:http's own keep-alive timeout (5 s) would be too late here.
    await cut(c, 3000);
    expect(c.closedByUs).toBe(false);
  });

  it('does not cut a WebSocket held longer than every timeout, and counts it against the limits', async () => {
    const r = await start({ maxConnectionsPerClient: 2 });
    const ws: RawConn[] = [];
    for (let i = 0; i < 2; i++) {
      const c = await open(r.port, '127.0.0.5');
      c.socket.write('GET /ws HTTP/1.1\r\nHost: x.localhost\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n');
      await waitFor(() => c.data.includes('\r\n\r\n'), 5000, '101');
      expect(parseResponse(c.data).status).toBe(101);
      ws.push(c);
    }
    // A third connection from the same address is over the limit: closed without an answer.
    const third = await open(r.port, '127.0.0.5');
    await cut(third, 5000);
    expect(third.data).toBe('');
    await sleep(REQUEST_TIMEOUT + IDLE_TIMEOUT + 500);
    for (const c of ws) {
      expect(c.closedAt).toBeNull();
      const before = c.data.length;
      c.socket.write('still here');
      await waitFor(() => c.data.slice(before) === 'still here', 5000, 'echo through the WebSocket');
    }
    // Another address is not affected by that one's limit.
    expect(
      (await rawRequest(r.port, 'GET / HTTP/1.1\r\nHost: x.localhost\r\nConnection: close\r\n\r\n')).status,
    ).toBe(200);
  });

  it('closes new connections over the global limit while an established client keeps being served', async () => {
    // Timeouts long enough that only the limit closes connections here.
    const r = await start({
      maxConnections: 12,
      maxConnectionsPerClient: 100,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 20_000,
      idleTimeoutMs: 10_000,
    });
    expect(r.maxConnections).toBe(12);
    const normal = await open(r.port, '127.0.0.1');
    let answered = 0;
    const ask = async () => {
      const before = normal.data.length;
      normal.socket.write(`GET /n${answered} HTTP/1.1\r\nHost: x.localhost\r\n\r\n`);
      await waitFor(() => normal.data.slice(before).includes(`"url":"/n${answered}"`), 5000, 'answer');
      answered++;
    };
    await ask();
    const attackers: RawConn[] = [];
    for (let i = 0; i < 30; i++) attackers.push(await open(r.port, `127.0.0.${6 + (i % 3)}`));
    await waitFor(() => attackers.filter((c) => c.closedAt !== null).length >= 19, 5000, 'refusals');
    const refused = attackers.filter((c) => c.closedAt !== null && c.data === '');
    expect(refused.length).toBe(19);
    for (let i = 0; i < 5; i++) await ask();
    expect(normal.closedAt).toBeNull();
    expect(answered).toBe(6);
  });
});
