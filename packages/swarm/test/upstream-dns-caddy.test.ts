/**
 * Caddy's dynamic upstreams fed by UpstreamDns, on a real Caddy: the upstreams of a route move from one
 * backend to another under a request loop while Caddy's config is loaded once, so no config load (and
 * no listener swap, docs/swarm.md "Known limits") happens during the moves: 0 failed requests and 0
 * connection resets.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caddyConfig, loadCaddyConfig } from '../src/caddy-routing.ts';
import { findOnPath } from '../src/command-runner.ts';
import { UpstreamDns } from '../src/upstream-dns.ts';
import {
  freePort,
  httpGet,
  removeDir,
  requestLoop,
  type Started,
  sleep,
  startCaddy,
  waitFor,
} from './helpers/lab.ts';

const hasCaddy = Boolean(findOnPath('caddy'));
if (!hasCaddy && process.env.CI) throw new Error('CI needs caddy (.ci/setup.d/20-swarm.sh)');

const DOMAIN = 'dyn.swarm.test';

describe.skipIf(!hasCaddy)('Caddy with SRV upstreams from UpstreamDns', () => {
  let dir: string;
  let caddy: (Started & { admin: string }) | undefined;
  const dns = new UpstreamDns();
  const backends: Server[] = [];
  const ports: number[] = [];
  let httpPort = 0;
  const name = dns.nameFor('web-dyn');
  const set = (...i: number[]) => dns.replace(new Map([[name, i.map((n) => `127.0.0.1:${ports[n]}`)]]));
  const get = () => httpGet(httpPort, DOMAIN);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'minipaas-dyn-'));
    caddy = await startCaddy(dir);
    await dns.start();
    for (const label of ['a', 'b', 'c']) {
      const s = createServer((_req, res) => res.end(`${label}\n`));
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      backends.push(s);
      ports.push((s.address() as { port: number }).port);
    }
    httpPort = await freePort();
    set(0);
    const base = {
      admin: { listen: new URL(caddy.admin).host },
      apps: {
        http: { servers: { s: { listen: [`127.0.0.1:${httpPort}`], automatic_https: { disable: true } } } },
      },
    };
    await loadCaddyConfig(
      caddy.admin,
      caddyConfig(base, [
        {
          service: 'web-dyn',
          domain: DOMAIN,
          port: 80,
          upstreams: [],
          srv: { name, resolver: dns.resolverAddress },
        },
      ]),
    );
    await waitFor('a through caddy', async () => (await get()).body === 'a\n', 15_000);
  }, 60_000);

  afterAll(async () => {
    await caddy?.stop();
    await dns.close();
    for (const s of backends) s.close();
    removeDir(dir);
  });

  it('moves a → a,b → b → b,c → c → a under four request loops with 0 failures and 0 resets', async () => {
    const configBefore = await (await fetch(`${caddy?.admin}/config/`)).text();
    const loops = Array.from({ length: 4 }, () => requestLoop(get, 2));
    const seen = new Set<string>();
    try {
      for (const step of [[0, 1], [1], [1, 2], [2], [0]]) {
        set(...step);
        // Caddy refreshes SRV answers every second.
        await waitFor(
          `only ${step.join(',')} answering`,
          async () => {
            const bodies = new Set<string>();
            for (let i = 0; i < 6; i++) bodies.add((await get()).body);
            for (const b of bodies) seen.add(b);
            return [...bodies].every((b) => step.some((n) => b === `${'abc'[n]}\n`));
          },
          10_000,
        );
        await sleep(300);
      }
    } finally {
      await Promise.all(loops.map((l) => l.stop()));
    }
    const results = loops.flatMap((l) => l.results);
    expect(results.length).toBeGreaterThan(200);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(loops.flatMap((l) => l.resets)).toEqual([]);
    expect(seen).toEqual(new Set(['a\n', 'b\n', 'c\n']));
    // One config the whole time.
    expect(await (await fetch(`${caddy?.admin}/config/`)).text()).toBe(configBefore);
  }, 120_000);

  it('answers 503 while the name has no endpoint, and serves again when one comes back', async () => {
    set();
    await waitFor('503 without upstreams', async () => (await get()).status === 503, 10_000);
    set(2);
    await waitFor('c again', async () => (await get()).body === 'c\n', 10_000);
  }, 60_000);
});
