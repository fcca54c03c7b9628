/**
 * Decompression bombs and oversized uploads against an in-process control plane listening on a real
 * socket (real agent, PGlite store, real gzip streams built here): every bomb is refused with a 413
 * naming the limit, minipaasd's memory stays flat, /health keeps answering, and a refused upload
 * changes nothing (no deployment, nothing left in MINIPAAS_HOME/builds, app unchanged).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { loadConfig, type MinipaasConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { fileHeader } from '../../../test/helpers/tarball.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Most RSS minipaasd may gain while it refuses a bomb. */
const RSS_BOUND = Number(process.env.MP_RSS_BOUND ?? 100 * MiB);
const MAX_UPLOAD = 16 * MiB;
/** Lower than the default (100k) only to keep the test short: each entry is a file written to disk. */
const MAX_ENTRIES = 5000;

let home: string;
let bombs: string;
let config: MinipaasConfig;
let agent: AgentHandle;
let cp: ControlPlane;
let base: string;
let auth: { authorization: string };

/** Writes the gzip of everything `gen` yields to `file`, streaming (the bomb never sits in memory). */
async function gzipTo(file: string, gen: () => AsyncGenerator<Buffer>, level: number): Promise<string> {
  await pipeline(Readable.from(gen()), createGzip({ level }), createWriteStream(file));
  return file;
}

const zeroChunk = Buffer.alloc(MiB);
async function* zeros(bytes: number): AsyncGenerator<Buffer> {
  for (let left = bytes; left > 0; left -= zeroChunk.length) yield zeroChunk.subarray(0, Math.min(left, MiB));
}

/** A tar stream of `count` files of `size` bytes each, filled by `body(i)` (zeros by default). */
async function* tarOf(count: number, size: number, body?: (i: number) => Buffer): AsyncGenerator<Buffer> {
  const pad = Buffer.alloc((512 - (size % 512)) % 512);
  const empty = Buffer.alloc(size);
  for (let i = 0; i < count; i++) {
    const parts = [fileHeader(`f/${i}.bin`, size), body ? body(i) : empty, pad];
    yield Buffer.concat(parts);
  }
  yield Buffer.alloc(1024);
}

async function* tarOfOneFile(size: number): AsyncGenerator<Buffer> {
  yield fileHeader('zeros.bin', size);
  yield* zeros(size);
  yield Buffer.alloc(1024);
}

/** POSTs a file as the deploy body over a real socket; chunked when `length` is false. */
function upload(file: string, app: string, length = true): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    void stat(file).then((s) => {
      const req = request(
        `${base}/api/v1/apps/${app}/deploy`,
        {
          method: 'POST',
          headers: {
            ...auth,
            'content-type': 'application/gzip',
            ...(length ? { 'content-length': String(s.size) } : {}),
          },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      // The server may answer (413) and close before reading the whole body.
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
      });
      createReadStream(file).pipe(req);
    }, reject);
  });
}

async function snapshot(app: string) {
  const get = async (url: string) => (await fetch(`${base}${url}`, { headers: auth })).json();
  const builds = await readdir(join(home, 'builds')).catch(() => [] as string[]);
  return {
    app: await get(`/api/v1/apps/${app}`),
    deployments: await get(`/api/v1/apps/${app}/deployments`),
    builds,
  };
}

/**
 * Runs `work` while sampling minipaasd's RSS (this process) and asking /health over the socket.
 * Returns the peak RSS growth and how many /health answers (all must be 200) came while it ran.
 */
async function watch<T>(
  work: () => Promise<T>,
): Promise<{ result: T; growth: number; healthAnswers: number }> {
  const before = process.memoryUsage().rss;
  const maxBefore = process.resourceUsage().maxRSS * 1024;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  let done = false;
  let healthAnswers = 0;
  const poller = (async () => {
    while (!done) {
      const r = await fetch(`${base}/health`);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
      if (!done) healthAnswers++;
      // Paced, so that the poller's own garbage does not count as the server's growth.
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  try {
    const result = await work();
    done = true;
    await poller;
    peak = Math.max(peak, process.memoryUsage().rss);
    // The kernel's high-water mark catches a spike between samples (or while the loop was blocked).
    const maxAfter = process.resourceUsage().maxRSS * 1024;
    const growth = Math.max(peak - before, maxAfter - Math.max(maxBefore, before));
    return { result, growth, healthAnswers };
  } finally {
    done = true;
    clearInterval(sampler);
  }
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-bombs-'));
  bombs = await mkdtemp(join(tmpdir(), 'mp-bombs-files-'));
  const portMin = 21000 + Math.floor(Math.random() * 80) * 100;
  config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_APP_PORT_MIN: String(portMin),
    MINIPAAS_APP_PORT_MAX: String(portMin + 99),
    MINIPAAS_ROUTER_PORT: String(await freePort()),
    MINIPAAS_MAX_UPLOAD_BYTES: String(MAX_UPLOAD),
    MINIPAAS_MAX_UPLOAD_ENTRIES: String(MAX_ENTRIES),
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  const logger = pino({ level: 'silent' });
  agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
  cp = await createControlPlane({
    config,
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
    dataDir: 'memory://',
    reconcile: false,
  });
  auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  await cp.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = cp.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  base = `http://127.0.0.1:${addr.port}`;
  const created = await fetch(`${base}/api/v1/apps`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'target' }),
  });
  expect(created.status).toBe(201);
}, 120_000);

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await rm(home, { recursive: true, force: true });
  await rm(bombs, { recursive: true, force: true });
});

describe('decompression bombs', () => {
  it('warms up: a small harmless upload is unpacked (422: nothing to run)', async () => {
    const file = await gzipTo(
      join(bombs, 'small.tar.gz'),
      () => tarOf(3, 100, () => Buffer.alloc(100, 97)),
      6,
    );
    const r = await upload(file, 'target');
    expect(r.status, r.body).toBe(422);
  });

  it.each([
    {
      name: '1 GiB of zeros, gzipped (~1 MB, not even a tar)',
      make: () => gzipTo(join(bombs, 'zeros.gz'), () => zeros(GiB), 9),
      limit: 'archive expands more than 200 times its compressed size (uploads.maxRatio)',
    },
    {
      name: 'one file of 1 GiB of zeros',
      make: () => gzipTo(join(bombs, 'one-file.tar.gz'), () => tarOfOneFile(GiB), 1),
      limit: 'archive entry "zeros.bin" is larger than 268435456 bytes (uploads.maxFileBytes)',
    },
    {
      name: '400 MiB in 50k small files of zeros',
      make: () => gzipTo(join(bombs, 'many.tar.gz'), () => tarOf(50_000, 8192), 6),
      limit: 'archive expands more than 200 times its compressed size (uploads.maxRatio)',
    },
    {
      name: '50k tiny files of varied bytes (a low ratio)',
      make: () =>
        gzipTo(
          join(bombs, 'entries.tar.gz'),
          () => tarOf(50_000, 8, (i) => Buffer.from(`${(i * 2654435761) % 99999999}`.padStart(8, '0'))),
          6,
        ),
      limit: `archive has more than ${MAX_ENTRIES} entries (uploads.maxEntries)`,
    },
  ])('refuses $name with a 413, flat memory and a live /health', async ({ make, limit }) => {
    const file = await make();
    expect((await stat(file)).size).toBeLessThan(MAX_UPLOAD);
    const before = await snapshot('target');
    const { result, growth, healthAnswers } = await watch(() => upload(file, 'target'));
    expect(result.status, result.body).toBe(413);
    expect(JSON.parse(result.body)).toEqual({
      error: { code: 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE', message: limit },
    });
    expect(growth, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`).toBeLessThan(RSS_BOUND);
    expect(healthAnswers).toBeGreaterThan(0);
    expect(await snapshot('target')).toEqual(before);
    await rm(file);
  });

  it('streams a large archive within the limits to disk without growing memory', async () => {
    // 192 MiB in 6 files, compressible about 30:1 (under maxRatio): unpacked for real, then refused
    // for having nothing to run.
    const block = (i: number) => {
      const b = Buffer.alloc(32 * MiB);
      let x = i + 1;
      for (let o = 0; o < b.length; o += 4096)
        for (let k = 0; k < 128; k += 4) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          b.writeUInt32LE(x, o + k);
        }
      return b;
    };
    const file = await gzipTo(join(bombs, 'large.tar.gz'), () => tarOf(6, 32 * MiB, block), 1);
    const before = await snapshot('target');
    const { result, growth } = await watch(() => upload(file, 'target'));
    expect(result.status, result.body).toBe(422);
    expect(growth, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`).toBeLessThan(RSS_BOUND);
    expect(await snapshot('target')).toEqual(before);
  });

  it('answers 413 for an upload over uploads.maxBytes, declared or streamed', async () => {
    const file = join(bombs, 'too-big.bin');
    await pipeline(Readable.from(zeros(MAX_UPLOAD + MiB)), createWriteStream(file));
    const before = await snapshot('target');
    const message = `upload is larger than ${MAX_UPLOAD} bytes (uploads.maxBytes)`;
    for (const length of [true, false]) {
      const r = await upload(file, 'target', length);
      expect(r.status).toBe(413);
      expect(JSON.parse(r.body).error).toEqual({ code: 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE', message });
    }
    expect(await snapshot('target')).toEqual(before);
  });
});
