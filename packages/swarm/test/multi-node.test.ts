/**
 * The toolkit on a real two-node swarm (two dockerd in network namespaces, see helpers/netns-swarm.ts),
 * driven through the real `minipaas` bin over the manager's TLS API: code init -> code expose ->
 * deploy build -> deploy rollout serves the app through Caddy from tasks on both nodes, and a second
 * rollout under a request loop has 0 failed requests. The machine's own Docker engine is not touched.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ComposeFile, findOnPath } from '@minipaas/swarm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BASE_IMAGE,
  ensureBaseImage,
  freePort,
  httpGet,
  removeDir,
  requestLoop,
  type Started,
  sleep,
  startCaddy,
  startRegistry,
  waitFor,
} from './helpers/lab.ts';
import { type NetnsSwarm, startNetnsSwarm } from './helpers/netns-swarm.ts';

const tools = ['docker', 'dockerd', 'docker-registry', 'caddy', 'busybox', 'ip', 'nsenter', 'openssl'];
const missing = tools.filter((t) => !findOnPath(t));
const notRoot = process.getuid?.() !== 0;
if ((missing.length || notRoot) && process.env.CI)
  throw new Error(`CI needs root and ${missing.join(', ') || 'nothing missing'} for the multi-node swarm`);

const CLI_BIN = join(import.meta.dirname, '../../cli/bin/minipaas.js');
const DOMAIN = 'multi.swarm.test';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) =>
    execFile(process.execPath, [CLI_BIN, ...args], { timeout: 300_000 }, (err, stdout, stderr) =>
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
}

function writeApp(dir: string, body: string): void {
  mkdirSync(join(dir, 'www'), { recursive: true });
  writeFileSync(join(dir, 'www/index.html'), body);
  writeFileSync(
    join(dir, 'Dockerfile'),
    `FROM ${BASE_IMAGE}
COPY www /www
HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
`,
  );
}

describe.skipIf(missing.length > 0 || notRoot)('toolkit on a two-node swarm over TLS', () => {
  let work: string;
  let cluster: NetnsSwarm | undefined;
  let registry: Started | undefined;
  let caddy: (Started & { admin: string }) | undefined;
  let httpPort: number;
  let envDir: string;
  const get = () => httpGet(httpPort, DOMAIN);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'minipaas-multinode-'));
    const registryPort = await freePort();
    cluster = await startNetnsSwarm(work, registryPort);
    registry = await startRegistry(join(work, 'registry'), cluster.registryAddr, registryPort);
    mkdirSync(join(work, 'caddy'));
    caddy = await startCaddy(join(work, 'caddy'));
    httpPort = await freePort();
    await ensureBaseImage(cluster.manager);
    envDir = join(work, 'env');
  }, 300_000);

  afterAll(async () => {
    const attempt = async (fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch {
        // best effort
      }
    };
    await attempt(() => cli(['deploy', 'routing', '-C', envDir]));
    await attempt(async () => caddy?.stop());
    await attempt(async () => registry?.stop());
    await attempt(async () => cluster?.stop());
    removeDir(work);
  }, 180_000);

  it('code init -> expose -> deploy build -> rollout serves from both nodes through Caddy', async () => {
    if (!cluster || !registry || !caddy) throw new Error('set-up failed');
    let r = await cli([
      'code',
      'init',
      envDir,
      '--stack',
      'multi',
      '--docker-host',
      `tcp://${cluster.managerAddr}:2376`,
      '--cert-path',
      cluster.certs,
      '--registry',
      `${cluster.registryAddr}:${registry.port}`,
      '--caddy-admin',
      caddy.admin,
      '--http-listen',
      `127.0.0.1:${httpPort}`,
      '--no-https',
    ]);
    expect(r.stderr).toBe('');
    writeApp(join(envDir, 'web'), 'one\n');
    writeFileSync(
      join(envDir, 'compose.yaml'),
      'services:\n  web:\n    build: ./web\n    stop_grace_period: 3s\n    deploy:\n      replicas: 2\n',
    );
    r = await cli(['code', 'expose', 'web', '--domain', DOMAIN, '--port', '8080', '-C', envDir]);
    expect(r.code, r.stderr).toBe(0);
    const f = ComposeFile.load(join(envDir, 'compose.yaml'));
    f.set(['services', 'web', 'deploy', 'update_config', 'monitor'], '2s');
    f.save();
    r = await cli(['deploy', 'build', '--tag', 'one', '-C', envDir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).images[0].pushed).toBe(true);
    r = await cli(['deploy', 'rollout', '-C', envDir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).services).toEqual([
      {
        service: 'multi_web',
        image: `${cluster.registryAddr}:${registry.port}/multi/web:one`,
        result: 'updated',
      },
    ]);
    const tasks = (await cluster.manager.listTasks({
      filters: JSON.stringify({ service: ['multi_web'], 'desired-state': ['running'] }),
    })) as { NodeID: string }[];
    expect(new Set(tasks.map((t) => t.NodeID)).size).toBe(2);
    await waitFor('served through caddy', async () => (await get()).body === 'one\n', 30_000);
    const routes = JSON.parse((await cli(['deploy', 'routing', '--json', '-C', envDir])).stdout).routes as {
      upstreams: string[];
    }[];
    const hosts = new Set(routes[0]?.upstreams.map((u) => u.split(':')[0]));
    expect(hosts).toEqual(new Set([cluster.managerAddr, cluster.workerAddr]));
  }, 400_000);

  it('a second rollout under a request loop has 0 failed requests', async () => {
    writeApp(join(envDir, 'web'), 'two\n');
    expect((await cli(['deploy', 'build', '--tag', 'two', '-C', envDir])).code).toBe(0);
    const loop = requestLoop(get);
    let r: { code: number; stdout: string; stderr: string };
    try {
      r = await cli(['deploy', 'rollout', '-C', envDir]);
      await sleep(4000);
    } finally {
      await loop.stop();
    }
    const { results, resets } = loop;
    expect(r.code, r.stderr).toBe(0);
    expect(results.filter((x) => x.status !== 200)).toEqual([]);
    // Caddy's listener swap at a config load may reset a queued connection; never more than one per load.
    const loads = r.stdout.split('\n').filter((l) => /^\s+routing: /.test(l)).length;
    expect(loads).toBeGreaterThan(0);
    expect(resets.length).toBeLessThanOrEqual(loads);
    expect(results.length).toBeGreaterThan(20);
    expect(results.at(-1)?.body).toBe('two\n');
  }, 400_000);
});
