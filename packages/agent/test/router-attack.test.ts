/**
 * A bounded slow-connection attack on loopback (finding 7 of the hardening issue): four attacker
 * addresses open 300 connections each and send partial headers, trickle a body, or send nothing,
 * while a normal client on another address keeps making requests. Small limits and timeouts keep
 * it short; every socket is closed at the end whatever happens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

const ATTACKERS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
const PER_ATTACKER = 300;
const PER_CLIENT = 100;
const HEADERS_TIMEOUT = 1000;
const REQUEST_TIMEOUT = 2000;

type Kind = 'partial-headers' | 'slow-body' | 'silent';
const KINDS: Kind[] = ['partial-headers', 'slow-body', 'silent'];

describe('router under a slow-connection attack', () => {
  let upstream: EchoUpstream;
  let router: RouterHandle;

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    router = await startRouter({
      host: '127.0.0.1',
      port: 0,
      baseDomain: 'localhost',
      resolve: (app) => (app === 'x' ? [{ port: upstream.port, inFlight: 0 }] : null),
      headersTimeoutMs: HEADERS_TIMEOUT,
      requestTimeoutMs: REQUEST_TIMEOUT,
      idleTimeoutMs: 1000,
      maxConnectionsPerClient: PER_CLIENT,
      maxConnections: 2000,
    });
  });

  afterAll(async () => {
    await router?.close();
    await upstream?.close();
  });

  it('cuts the attackers and keeps serving a normal client', async () => {
    const attack: { conn: RawConn; kind: Kind; from: string }[] = [];
    let connectFailures = 0;
    const drip = setInterval(() => {
      for (const a of attack) {
        if (a.kind !== 'silent' && a.conn.closedAt === null && a.conn.socket.writable)
          a.conn.socket.write('a');
      }
    }, 200);
    let attackOver = false;
    const normal: number[] = [];
    const normalTraffic = (async () => {
      // Three at a time on fresh connections, until the attack is over (and at least 30).
      while ((!attackOver || normal.length < 30) && normal.length < 600) {
        const batch = await Promise.all(
          [0, 1, 2].map(() =>
            rawRequest(
              router.port,
              `GET /normal HTTP/1.1\r\nHost: x.localhost\r\nConnection: close\r\n\r\n`,
              '127.0.0.1',
            ).then(
              (r) => r.status,
              () => 0,
            ),
          ),
        );
        normal.push(...batch);
        await sleep(20);
      }
    })();

    try {
      for (let i = 0; i < PER_ATTACKER; i += 25) {
        const batch = ATTACKERS.flatMap((from) =>
          Array.from({ length: 25 }, (_, j) => ({ from, kind: KINDS[(i + j) % 3] as Kind })),
        );
        const opened = await Promise.allSettled(batch.map((b) => rawConnect(router.port, b.from)));
        opened.forEach((o, j) => {
          const b = batch[j] as { from: string; kind: Kind };
          if (o.status === 'rejected') {
            connectFailures++;
            return;
          }
          const conn = o.value;
          attack.push({ conn, ...b });
          if (conn.closedAt !== null || !conn.socket.writable) return;
          if (b.kind === 'partial-headers')
            conn.socket.write('GET / HTTP/1.1\r\nHost: x.localhost\r\nX-Slow: ');
          if (b.kind === 'slow-body') {
            conn.socket.write('POST /upload HTTP/1.1\r\nHost: x.localhost\r\nContent-Length: 100000\r\n\r\n');
          }
        });
      }

      // The per-client limit: no attacker address holds more than PER_CLIENT connections.
      const openFrom = (from: string) =>
        attack.filter((a) => a.from === from && a.conn.closedAt === null).length;
      await waitFor(() => ATTACKERS.every((from) => openFrom(from) <= PER_CLIENT), 3000, 'per-client limit');
      const refused = attack.filter((a) => a.conn.closedAt !== null && a.conn.data === '').length;

      // The timeouts: every attacker connection is closed by the router, none by us.
      await waitFor(
        () => attack.every((a) => a.conn.closedAt !== null),
        REQUEST_TIMEOUT + 8000,
        'all attackers cut',
      );
      attackOver = true;
      await normalTraffic;

      const timedOut = (kind: Kind) =>
        attack.filter((a) => a.kind === kind && parseResponse(a.conn.data).status === 408).length;
      const report = {
        opened: attack.length,
        connectFailures,
        refusedByLimit: attack.filter((a) => a.conn.data === '').length,
        refusedWhileOpening: refused,
        timedOut: Object.fromEntries(KINDS.map((k) => [k, timedOut(k)])),
        normalRequests: normal.length,
        normalOk: normal.filter((s) => s === 200).length,
      };
      process.stderr.write(`router attack: ${JSON.stringify(report)}\n`);

      expect(attack.length + connectFailures).toBe(ATTACKERS.length * PER_ATTACKER);
      expect(attack.some((a) => a.conn.closedByUs)).toBe(false);
      expect(refused).toBeGreaterThan(0);
      for (const k of KINDS) expect(timedOut(k), k).toBeGreaterThan(0);
      // Every attacker connection got either nothing (refused at once) or a 408.
      expect(report.refusedByLimit + KINDS.reduce((n, k) => n + timedOut(k), 0)).toBe(attack.length);
      expect(normal.length).toBeGreaterThanOrEqual(30);
      expect(normal.filter((s) => s !== 200)).toEqual([]);
      await waitFor(() => upstream.open() === 0, 5000, 'upstream requests of the slow bodies aborted');
    } finally {
      attackOver = true;
      clearInterval(drip);
      for (const a of attack) hangUp(a.conn);
      await normalTraffic;
    }
  });
});
