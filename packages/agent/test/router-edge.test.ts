import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RouterHandle, startRouter } from '../src/router/router.ts';
import { waitFor } from './helpers.ts';
import {
  type EchoUpstream,
  hangUp,
  parseResponse,
  rawConnect,
  rawRequest,
  type Seen,
  startEchoUpstream,
} from './raw-client.ts';

/** The router as the edge: request targets, forwarding headers and Connection-named headers. */
describe('router at the edge', () => {
  let upstream: EchoUpstream;
  let router: RouterHandle;
  let port: number;

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    router = await startRouter({
      host: '127.0.0.1',
      port: 0,
      baseDomain: 'localhost',
      resolve: (app) => (app === 'x' ? [{ port: upstream.port, inFlight: 0 }] : null),
    });
    port = router.port;
  });

  afterAll(async () => {
    await router?.close();
    await upstream?.close();
  });

  const seen = (body: string): Seen => JSON.parse(body) as Seen;

  it('routes an absolute-form target by its authority, not Host, and forwards only the path', async () => {
    const r = await rawRequest(
      port,
      'GET http://x.localhost/abs?q=1 HTTP/1.1\r\nHost: other.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(r.status).toBe(200);
    const s = seen(r.body);
    expect(s.url).toBe('/abs?q=1');
    expect(s.headers.host).toBe('x.localhost');
    expect(s.headers['x-forwarded-host']).toBe('x.localhost');

    // Host names the app, the target another: the target wins.
    const other = await rawRequest(
      port,
      'GET http://other.localhost/x HTTP/1.1\r\nHost: x.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(other.status).toBe(404);
    expect(other.body).toContain('other');

    const query = await rawRequest(
      port,
      'GET HTTP://X.localhost:8080?y=2 HTTP/1.1\r\nHost: x.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(query.status).toBe(200);
    expect(seen(query.body).url).toBe('/?y=2');
    expect(seen(query.body).headers.host).toBe('X.localhost:8080');

    const byPath = await rawRequest(
      port,
      'GET http://127.0.0.1/apps/x/p?z HTTP/1.1\r\nHost: y.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(byPath.status).toBe(200);
    expect(seen(byPath.body).url).toBe('/p?z');
    expect(seen(byPath.body).headers['x-forwarded-prefix']).toBe('/apps/x');
  });

  it('answers 400 to request targets that are neither a path nor an http URL', async () => {
    for (const target of ['*', 'ftp://x.localhost/', 'http://user@x.localhost/', 'x.localhost:80']) {
      const r = await rawRequest(
        port,
        `OPTIONS ${target} HTTP/1.1\r\nHost: x.localhost\r\nConnection: close\r\n\r\n`,
      );
      expect(r.status, target).toBe(400);
    }
  });

  it('drops client-sent forwarding headers and sets its own', async () => {
    const r = await rawRequest(
      port,
      'GET /f HTTP/1.1\r\nHost: x.localhost:8080\r\nConnection: close\r\n' +
        'Forwarded: for=6.6.6.6;proto=https\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n' +
        'X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Port: 443\r\n' +
        'X-Forwarded-Prefix: /admin\r\nX-Kept: yes\r\n\r\n',
      '127.0.0.3',
    );
    expect(r.status).toBe(200);
    const h = seen(r.body).headers;
    expect(h['x-forwarded-for']).toBe('127.0.0.3');
    expect(h['x-real-ip']).toBe('127.0.0.3');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('x.localhost:8080');
    expect(h.forwarded).toBe('for=127.0.0.3;proto=http;host="x.localhost:8080"');
    expect(h['x-forwarded-port']).toBeUndefined();
    expect(h['x-forwarded-prefix']).toBeUndefined();
    expect(h['x-kept']).toBe('yes');
  });

  it('strips every header named in Connection, case-insensitively, in both directions', async () => {
    const r = await rawRequest(
      port,
      'GET /c HTTP/1.1\r\nHost: x.localhost\r\nConnection: close, X-Secret\r\nConnection: x-OTHER\r\n' +
        'X-Secret: 1\r\nx-other: 2\r\nX-Kept: 3\r\n\r\n',
    );
    expect(r.status).toBe(200);
    const h = seen(r.body).headers;
    expect(h['x-secret']).toBeUndefined();
    expect(h['x-other']).toBeUndefined();
    expect(h['x-kept']).toBe('3');

    const back = await rawRequest(
      port,
      'GET /response-hop HTTP/1.1\r\nHost: x.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(back.status).toBe(200);
    expect(back.headers['x-up-secret']).toBeUndefined();
    expect(back.headers['x-up-kept']).toBe('1');
  });

  it('applies the same rules to upgrades, which still work', async () => {
    const conn = await rawConnect(port, '127.0.0.4');
    try {
      conn.socket.write(
        'GET http://x.localhost/ws HTTP/1.1\r\nHost: other.localhost\r\nConnection: Upgrade, X-Secret\r\n' +
          'Upgrade: test\r\nX-Secret: 1\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\r\n',
      );
      await waitFor(() => conn.data.includes('\r\n\r\n'), 5000, '101');
      const res = parseResponse(conn.data);
      expect(res.status).toBe(101);
      const s = JSON.parse(Buffer.from(res.headers['x-seen'] ?? '', 'base64').toString()) as Seen;
      expect(s.url).toBe('/ws');
      expect(s.headers.host).toBe('x.localhost');
      expect(s.headers.connection).toBe('Upgrade');
      expect(s.headers.upgrade).toBe('test');
      expect(s.headers['x-secret']).toBeUndefined();
      expect(s.headers['x-real-ip']).toBe('127.0.0.4');
      expect(s.headers.forwarded).toBe('for=127.0.0.4;proto=http;host=x.localhost');
      const before = conn.data.length;
      conn.socket.write('ping');
      await waitFor(() => conn.data.slice(before) === 'ping', 5000, 'echo');
    } finally {
      hangUp(conn);
    }
  });
});
