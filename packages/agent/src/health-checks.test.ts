import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type CheckTarget, livenessChecks, startupChecks } from './health-checks.ts';

/** A free port: listen on 0, note the port, close. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

describe('app.json check loops against a real HTTP server', () => {
  let server: Server | null = null;
  afterEach(async () => {
    await new Promise((r) => (server ? server.close(r) : r(null)));
    server = null;
  });

  const target = (port: number, onSleep: (n: number) => void = () => {}): CheckTarget => {
    let sleeps = 0;
    return {
      port,
      startedMs: Date.now(),
      startTimeoutMs: 10_000,
      probeIntervalMs: 20,
      current: () => true,
      sleep: (ms) => {
        onSleep(++sleeps);
        return new Promise((r) => setTimeout(r, Math.min(ms, 20)));
      },
    };
  };

  it('tries while nothing listens do not use up attempts', async () => {
    const port = await freePort();
    let listening: Promise<void> | null = null;
    const t = target(port, (n) => {
      // Start answering only after three refused tries.
      if (n === 3 && !listening) {
        server = createServer((_req, res) => res.end('status: ok'));
        const srv = server;
        listening = new Promise((r) => srv.listen(port, '127.0.0.1', () => r()));
      }
    });
    const reason = await startupChecks(t, [{ type: 'startup', path: '/', content: 'ok', attempts: 1 }]);
    expect(reason).toBeNull();
  });

  it('fails with the reason after `attempts` answered failures; liveness reports consecutive failures', async () => {
    server = createServer((req, res) => {
      res.statusCode = req.url === '/down' ? 503 : 200;
      res.end('hello');
    });
    const srv = server;
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const { port } = srv.address() as AddressInfo;
    expect(
      await startupChecks(target(port), [
        { type: 'startup', path: '/', content: 'hello' },
        { type: 'readiness', path: '/', content: 'ok', attempts: 2, waitMs: 10 },
      ]),
    ).toBe('readiness check /: body does not contain "ok" (2 attempts)');
    expect(
      await livenessChecks(target(port), [
        { type: 'liveness', path: '/', waitMs: 5 },
        { type: 'liveness', path: '/down', attempts: 3, waitMs: 5 },
      ]),
    ).toBe('liveness check /down: answered 503 (3 attempts)');
  });
});
