/**
 * End-to-end through the real CLI on a real platform (`minipaas up`): volumes (create, put, ls, get,
 * rm, backup, restore, quota refusal), an app reading its volume through the router across a redeploy,
 * a rollback and a restart,
 * and resource limits: `minipaas resources` sets 64 MiB, the app allocates 200 MiB, and `ps` shows
 * `oom-killed` (cgroup v1 under a root agent; without root `ps` says the limits are unsupported), plus
 * CPU/MEM columns and the metrics endpoint's samples.
 */
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InstanceInfo } from '@minipaas/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Platform, routerGet, startPlatform, waitFor } from '../helpers/platform.ts';

const root = process.getuid?.() === 0;
let p: Platform;
let work: string;

const SERVER = `
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const dir = process.env.MINIPAAS_VOLUME_DATA;
const hog = [];
http.createServer((req, res) => {
  if (req.url === '/eat') {
    res.end('eating');
    setTimeout(() => { for (let i = 0; i < 20; i++) hog.push(Buffer.alloc(10 * 1024 * 1024, 1)); }, 50);
    return;
  }
  let body = 'release ' + process.env.MINIPAAS_RELEASE + '\\n';
  try { body += fs.readFileSync(path.join(dir, 'docs', 'hello.txt'), 'utf8'); } catch (e) { body += 'missing ' + e.code; }
  res.end(body);
}).listen(Number(process.env.PORT));
`;

beforeAll(async () => {
  p = await startPlatform({ MINIPAAS_SAMPLE_INTERVAL_MS: '500' });
  work = await mkdtemp(join(tmpdir(), 'mp-e2e-vol-'));
}, 90_000);

afterAll(async () => {
  await p?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function ok(args: string[]): Promise<string> {
  const r = await p.cli(args, { timeoutMs: 120_000 });
  expect(r.code, `minipaas ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

async function instances(app: string): Promise<InstanceInfo[]> {
  return (JSON.parse(await ok(['ps', app, '--json'])) as { instances: InstanceInfo[] }).instances;
}

describe('volumes and resource limits through the CLI', () => {
  it('an uploaded file is served by the app, survives a redeploy, and backs up and restores', async () => {
    const app = join(work, 'app');
    await ok(['apps', 'create', 'volweb']);
    await ok(['volumes:create', 'data', '--app', 'volweb', '--size', '1M']);
    await writeFile(join(work, 'hello.txt'), 'hello from a volume');
    expect(await ok(['volumes:put', 'data', join(work, 'hello.txt'), '--dir', 'docs'])).toContain(
      'docs/hello.txt',
    );
    const ls = JSON.parse(await ok(['volumes:ls', 'data', 'docs', '--json'])) as {
      entries: Array<{ name: string }>;
    };
    expect(ls.entries.map((e) => e.name)).toEqual(['hello.txt']);
    await mkdir(app);
    await writeFile(join(app, 'server.js'), SERVER);
    await writeFile(join(app, 'Procfile'), 'web: node server.js\n');
    await ok(['deploy', app, '--app', 'volweb']);
    const host = `volweb.localhost:${p.routerPort}`;
    expect((await routerGet(p.routerPort, '/', host)).body).toBe('release v1\nhello from a volume');
    await ok(['deploy', app, '--app', 'volweb']);
    expect((await routerGet(p.routerPort, '/', host)).body).toBe('release v2\nhello from a volume');
    // A rollback (no build: v1's files as v3) and a restart keep the volume's data.
    await ok(['rollback', 'volweb']);
    expect((await routerGet(p.routerPort, '/', host)).body).toBe('release v3\nhello from a volume');
    await ok(['restart', 'volweb']);
    expect((await routerGet(p.routerPort, '/', host)).body).toBe('release v3\nhello from a volume');

    await ok(['volumes:get', 'data', 'docs/hello.txt', '-o', join(work, 'copy.txt')]);
    expect(await readFile(join(work, 'copy.txt'), 'utf8')).toBe('hello from a volume');
    const tarball = join(work, 'data.tar.gz');
    await ok(['volumes:backup', 'data', '-o', tarball]);
    expect((await stat(tarball)).size).toBeGreaterThan(0);
    await ok(['volumes:rm', 'data', 'docs', '-r']);
    expect((await routerGet(p.routerPort, '/', host)).body).toContain('missing ENOENT');
    await ok(['volumes:restore', 'data', tarball]);
    expect((await routerGet(p.routerPort, '/', host)).body).toBe('release v3\nhello from a volume');

    // Over the 1 MiB quota: one readable line, non-zero exit, nothing written.
    await writeFile(join(work, 'big.bin'), Buffer.alloc(2 * 1024 * 1024));
    const big = await p.cli(['volumes:put', 'data', join(work, 'big.bin')]);
    expect(big.code).not.toBe(0);
    expect(big.stderr).toMatch(/quota of volume "data".*limit 1048576 bytes/);
    const top = JSON.parse(await ok(['volumes:ls', 'data', '--json'])) as {
      entries: Array<{ name: string }>;
    };
    expect(top.entries.map((e) => e.name)).toEqual(['docs']);
    const traversal = await p.cli(['volumes:get', 'data', '../../etc/passwd', '-o', join(work, 'x')]);
    expect(traversal.code).not.toBe(0);
    expect(traversal.stderr).toContain('refused');
  }, 240_000);

  it('ps shows CPU/MEM and the metrics endpoint has samples', async () => {
    await waitFor('a usage sample', async () => (await instances('volweb'))[0]?.usage ?? null, 20_000);
    const text = await ok(['ps', 'volweb']);
    expect(text).toMatch(/CPU\s+MEM/);
    const m = await p.api<{ instances: Array<{ samples: unknown[]; limits?: { mode: string } }> }>(
      'GET',
      '/api/v1/apps/volweb/metrics',
    );
    expect(m.status).toBe(200);
    expect(m.body.instances[0]?.samples.length).toBeGreaterThan(0);
    expect(m.body.instances[0]?.limits?.mode).toBe(root ? 'cgroup-v1' : 'unsupported');
  }, 60_000);

  it.skipIf(!root)(
    'an app limited to 64 MiB that allocates 200 MiB is OOM-killed and ps shows it',
    async () => {
      const set = JSON.parse(
        await ok(['resources', 'volweb', '--memory', '64', '--restart', 'no', '--json']),
      );
      expect(set).toMatchObject({ memoryMb: 64, restartPolicy: 'no' });
      const host = `volweb.localhost:${p.routerPort}`;
      const running = await waitFor('the app on its new limits', async () => {
        const [i] = await instances('volweb');
        return i?.status === 'running' && i.limits?.memoryMb === 64 ? i : null;
      });
      expect(running.limits?.mode).toBe('cgroup-v1');
      await routerGet(p.routerPort, '/eat', host);
      const killed = await waitFor('oom-killed', async () => {
        const [i] = await instances('volweb');
        return i?.status === 'oom-killed' ? i : null;
      });
      expect(killed.error).toContain('OOM killer');
      const text = await ok(['ps', 'volweb']);
      expect(text).toContain('oom-killed');
      const logs = await ok(['logs', 'volweb', '-n', '50']);
      expect(logs).toContain('killed by the OOM killer at its 64 MiB memory limit');
    },
    120_000,
  );
});
