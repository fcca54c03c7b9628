import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectionCap, fdSoftLimit } from '../connection-limits.ts';
import { stripHopByHop } from './headers.ts';
import { absoluteTarget, routeRequest } from './routing.ts';

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

describe('absoluteTarget', () => {
  it('splits an absolute-form target into authority and origin-form path', () => {
    expect(absoluteTarget('http://x.localhost/a/b?c=1')).toEqual({ host: 'x.localhost', path: '/a/b?c=1' });
    expect(absoluteTarget('HTTPS://X.localhost:8443')).toEqual({ host: 'X.localhost:8443', path: '/' });
    expect(absoluteTarget('http://[::1]:8080?q')).toEqual({ host: '[::1]:8080', path: '/?q' });
  });
  it('refuses what is no http URL or carries userinfo', () => {
    for (const t of [
      '*',
      'x.localhost:80',
      'ftp://x/',
      'http://',
      'http:///x',
      'http://u:p@x.localhost/',
      'http:x',
    ]) {
      expect(absoluteTarget(t), t).toBeNull();
    }
  });
});

describe('connection limits and the file-descriptor limit', () => {
  it('keeps the configured global limit when it fits, else a safe share of the soft limit', () => {
    expect(connectionCap(8192, 20_000)).toBe(8192);
    expect(connectionCap(8192, 1024)).toBe(384);
    expect(connectionCap(8192, 65_536)).toBe(8192);
    expect(connectionCap(100_000, 65_536)).toBe(32_256);
    expect(connectionCap(8192, null)).toBe(8192);
    expect(connectionCap(8192, 2)).toBe(1);
  });
  it('reads the soft limit from a limits file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mp-limits-'));
    try {
      const file = join(dir, 'limits');
      writeFileSync(
        file,
        'Limit                     Soft Limit           Hard Limit           Units\n' +
          'Max processes             63711                63711                processes\n' +
          'Max open files            4096                 524288               files\n',
      );
      expect(fdSoftLimit(file)).toBe(4096);
      writeFileSync(file, 'Max open files            unlimited            unlimited            files\n');
      expect(fdSoftLimit(file)).toBeNull();
      expect(fdSoftLimit(join(dir, 'missing'))).toBeNull();
      // This process: whatever the system says, a positive number on Linux.
      if (process.platform === 'linux') expect(fdSoftLimit()).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
