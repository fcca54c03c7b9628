/**
 * Real components for the swarm toolkit tests: the local Docker engine (a single-node swarm, initialised
 * here only when the engine is not in one yet, and left again afterwards), a busybox base image made
 * with `docker import`, Debian's docker-registry and caddy started on free loopback ports. Everything
 * started here has a stop function; in CI a missing component is an error, elsewhere the suites skip.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findOnPath } from '@minipaas/swarm';
import Docker from 'dockerode';
import { create as createTar } from 'tar';

export const BASE_IMAGE = 'minipaas-test/busybox:1';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Why the swarm suites cannot run here, or undefined. In CI that is a failure, not a skip. */
export async function missingForSwarm(tools: readonly string[]): Promise<string | undefined> {
  const missing = tools.filter((t) => !findOnPath(t));
  if (missing.length) return `missing: ${missing.join(', ')}`;
  try {
    await docker.ping();
  } catch {
    return 'no Docker engine at /var/run/docker.sock';
  }
  return undefined;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(200);
  }
}

/** A GET with an explicit Host header; resolves with status and body (never rejects). */
export function httpGet(
  port: number,
  host: string,
  path = '/',
  address = '127.0.0.1',
): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((res) => {
    const req = request(
      { host: address, port, path, headers: { host, connection: 'close' }, timeout: 10_000 },
      (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => {
          body += c;
        });
        r.on('end', () => res({ status: r.statusCode ?? 0, body }));
        r.on('error', (err) => res({ status: 0, body, error: `response: ${err.message}` }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => res({ status: 0, body: '', error: err.message }));
    req.end();
  });
}

type Answer = { status: number; error?: string };

/** A connection Caddy reset before sending any byte of an answer (see {@link requestLoop}). */
export const isListenerReset = (a: Answer): boolean =>
  a.status === 0 && /^(connect|read) ECONNRESET\b/.test(a.error ?? '');

/**
 * Sends `get` in a loop until `stop()`, for the "0 failed requests" checks. Caddy on Linux binds a new
 * SO_REUSEPORT socket at every config load and closes the old one; the kernel resets connections still
 * queued on the old socket (docs/swarm.md, "Known limits"; ~1.7 resets per load measured at ~3,000
 * req/s). A request reset that way, before any byte of an answer, is retried once (as an HTTP client
 * that retries idempotent requests does) and kept in `resets`, so a test can bound them; every other
 * failure, a reset after the answer began included, stays in `results`.
 */
export function requestLoop<T extends Answer>(
  get: () => Promise<T>,
  intervalMs = 20,
): { results: T[]; resets: T[]; stop: () => Promise<void> } {
  const results: T[] = [];
  const resets: T[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      let a = await get();
      if (isListenerReset(a)) {
        resets.push(a);
        a = await get();
      }
      results.push(a);
      await sleep(intervalMs);
    }
  })();
  return {
    results,
    resets,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

const OWNER = 'minipaas-test-swarm-owner';
const LEASE = 'minipaas-test-lease-';
/** Leases older than this are from runs that died: they no longer keep the swarm. */
const STALE_LEASE_MS = 30 * 60_000;

interface ConfigInfo {
  ID: string;
  CreatedAt?: string;
  Spec?: { Name?: string; Data?: string };
}

async function configsNamed(prefix: string): Promise<ConfigInfo[]> {
  const list = (await docker.listConfigs({ filters: JSON.stringify({ name: [prefix] }) })) as ConfigInfo[];
  return list.filter((c) => c.Spec?.Name?.startsWith(prefix));
}

/**
 * Joins the engine into a single-node swarm when it is in none, and takes a lease on it (a Docker
 * config) so that test runs sharing the engine do not pull the swarm from under each other. The
 * returned function drops the lease; the last run out leaves a swarm that a test run created (and
 * removes the docker_gwbridge network its init made), a swarm that was there before stays.
 */
export async function ensureSwarm(id: string): Promise<() => Promise<void>> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
  const state = info.Swarm?.LocalNodeState;
  if (state === 'inactive') {
    const hadGwBridge = await docker
      .getNetwork('docker_gwbridge')
      .inspect()
      .then(() => true)
      .catch(() => false);
    try {
      await docker.swarmInit({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
      await docker.createConfig({
        Name: OWNER,
        Data: Buffer.from(JSON.stringify({ hadGwBridge })).toString('base64'),
      });
    } catch (err) {
      // Another run initialised it a moment ago: share it.
      if (!/already part of a swarm|already exists/i.test(String(err))) throw err;
    }
  } else if (state !== 'active') {
    throw new Error(`the local engine's swarm state is ${state}`);
  }
  const now = (await docker.info()) as { Swarm?: { ControlAvailable?: boolean } };
  if (!now.Swarm?.ControlAvailable)
    throw new Error('the local engine is a swarm worker: the tests need a manager');
  const lease = (await docker.createConfig({
    Name: `${LEASE}${id}`,
    Data: Buffer.from(id).toString('base64'),
  })) as {
    id: string;
  };
  return async () => {
    await docker
      .getConfig(lease.id)
      .remove()
      .catch(() => {});
    const live = (await configsNamed(LEASE)).filter(
      (c) => Date.now() - Date.parse(c.CreatedAt ?? '') < STALE_LEASE_MS,
    );
    if (live.length > 0) return;
    const owner = (await configsNamed(OWNER))[0];
    if (!owner) return; // the swarm was there before the tests
    const inspected = (await docker.getConfig(owner.ID).inspect()) as ConfigInfo;
    const { hadGwBridge } = JSON.parse(
      Buffer.from(inspected.Spec?.Data ?? '', 'base64').toString() || '{}',
    ) as {
      hadGwBridge?: boolean;
    };
    await docker.swarmLeave({ force: true });
    if (!hadGwBridge)
      await docker
        .getNetwork('docker_gwbridge')
        .remove()
        .catch(() => {});
  };
}

/** Imports a busybox-static root filesystem as {@link BASE_IMAGE} when the engine does not have it. */
export async function ensureBaseImage(engine: Docker = docker): Promise<void> {
  try {
    await engine.getImage(BASE_IMAGE).inspect();
    return;
  } catch {
    // import it below
  }
  const busybox = findOnPath('busybox');
  if (!busybox) throw new Error('busybox is not installed (apt-get install -y busybox-static)');
  const root = mkdtempSync(join(tmpdir(), 'minipaas-rootfs-'));
  try {
    for (const d of ['bin', 'tmp', 'www', 'etc']) mkdirSync(join(root, d));
    copyFileSync(busybox, join(root, 'bin/busybox'));
    for (const app of [
      'sh',
      'httpd',
      'wget',
      'sleep',
      'echo',
      'cat',
      'date',
      'ls',
      'true',
      'false',
      'env',
      'kill',
    ])
      symlinkSync('busybox', join(root, 'bin', app));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
    const tar = createTar({ cwd: root, portable: false }, ['bin', 'tmp', 'www', 'etc']);
    const stream = await engine.importImage(tar as never, { repo: 'minipaas-test/busybox', tag: '1' });
    await new Promise<void>((res, rej) =>
      engine.modem.followProgress(stream as NodeJS.ReadableStream, (err: Error | null) =>
        err ? rej(err) : res(),
      ),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export interface Started {
  port: number;
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    child.kill('SIGTERM');
  });
}

/** Debian's docker-registry on a free loopback port with its storage in `dir`. */
export async function startRegistry(dir: string, host = '127.0.0.1', fixedPort?: number): Promise<Started> {
  const port = fixedPort ?? (await freePort());
  const config = join(dir, 'registry.yml');
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}:${port}\n`,
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  await waitFor('docker-registry', async () => {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    return (await httpGet(port, `${host}:${port}`, '/v2/', host)).status === 200;
  });
  return { port, stop: () => stopChild(child) };
}

/** Caddy with its admin API on a free loopback port and a minimal config; state under `dir`. */
export async function startCaddy(dir: string): Promise<Started & { admin: string }> {
  const port = await freePort();
  const config = join(dir, 'caddy-boot.json');
  writeFileSync(config, JSON.stringify({ admin: { listen: `127.0.0.1:${port}` } }));
  const env = {
    ...process.env,
    HOME: dir,
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_CONFIG_HOME: join(dir, 'config'),
  };
  const child = spawn('caddy', ['run', '--config', config], { stdio: 'ignore', env });
  const admin = `http://127.0.0.1:${port}`;
  await waitFor('caddy', async () => {
    if (child.exitCode !== null) throw new Error(`caddy exited with ${child.exitCode}`);
    return (await httpGet(port, `127.0.0.1:${port}`, '/config/')).status === 200;
  });
  return { port, admin, stop: () => stopChild(child) };
}

/** Removes a temp dir. */
export function removeDir(dir: string | undefined): void {
  if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}
