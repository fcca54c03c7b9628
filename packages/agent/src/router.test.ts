import { describe, expect, it } from 'vitest';
import { routeRequest, stripHopByHop } from './router.ts';

describe('routeRequest', () => {
  it('routes by host, ignoring the port', () => {
    expect(routeRequest('hello.localhost:8080', '/x?y=1', 'localhost')).toEqual({
      kind: 'app',
      app: 'hello',
      path: '/x?y=1',
    });
    expect(routeRequest('Hello.Apps.Example.com', '/', 'apps.example.com')).toEqual({
      kind: 'app',
      app: 'hello',
      path: '/',
    });
    expect(routeRequest('a.b.localhost', '/', 'localhost')).toEqual({ kind: 'unknown' });
  });
  it('routes by path with the prefix stripped, and redirects the bare prefix', () => {
    expect(routeRequest('localhost:8080', '/apps/hello/a?b=1', 'localhost')).toEqual({
      kind: 'app',
      app: 'hello',
      path: '/a?b=1',
      prefix: '/apps/hello',
    });
    expect(routeRequest('127.0.0.1', '/apps/hello', 'localhost')).toEqual({
      kind: 'redirect',
      location: '/apps/hello/',
    });
    expect(routeRequest('127.0.0.1', '/apps/hello?x', 'localhost')).toEqual({
      kind: 'redirect',
      location: '/apps/hello/?x',
    });
    expect(routeRequest('127.0.0.1', '/apps/Bad_Name/', 'localhost')).toEqual({ kind: 'unknown' });
  });
  it('serves a landing page on the bare domain and 404s the rest', () => {
    expect(routeRequest('localhost:8080', '/', 'localhost')).toEqual({ kind: 'landing' });
    expect(routeRequest('[::1]:8080', '/other', 'localhost')).toEqual({ kind: 'unknown' });
  });
});

describe('stripHopByHop', () => {
  it('removes hop-by-hop headers and those named in Connection', () => {
    expect(
      stripHopByHop({
        connection: 'keep-alive, x-secret',
        'keep-alive': 'timeout=5',
        'x-secret': '1',
        'transfer-encoding': 'chunked',
        te: 'trailers',
        upgrade: 'h2c',
        'x-kept': 'yes',
        'content-type': 'text/plain',
      }),
    ).toEqual({ 'x-kept': 'yes', 'content-type': 'text/plain' });
  });
});
