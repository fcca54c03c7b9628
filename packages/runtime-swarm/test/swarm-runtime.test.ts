/**
 * The swarm runtime on a real two-node swarm (two dockerd in network namespaces, the manager's API over
 * TLS, Debian's docker-registry, Caddy as the edge): an app built by the docker runtime's DockerBuilder on
 * the manager runs `web=3` spread over both nodes and answers through Caddy; its secret env var is a Docker
 * secret (not in the service spec); a new release rolls under a request loop with no failed request; a
 * release that never gets healthy is rolled back by Swarm; nodes are listed, drained and activated; when the
 * worker's daemon stops, its tasks are rescheduled on the manager and the app keeps answering.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RuntimeSpec } from '@minipaas/core';
import { DockerBuilder } from '@minipaas/runtime-docker';
import { CronScheduler, findOnPath, UpstreamDns } from '@minipaas/swarm';
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
} from '../../swarm/test/helpers/lab.ts';
import { type NetnsSwarm, startNetnsSwarm } from '../../swarm/test/helpers/netns-swarm.ts';
import { listSwarmNodes, SwarmDriver, SwarmEdge, serviceName, setNodeAvailability } from '../src/index.ts';

const tools = ['dockerd', 'docker-registry', 'caddy', 'busybox', 'ip', 'nsenter', 'openssl'];
const missing = tools.filter((t) => !findOnPath(t));
const notRoot = process.getuid?.() !== 0;
if ((missing.length || notRoot) && process.env.CI)
  throw new Error(`CI needs root and ${missing.join(', ') || 'nothing missing'} for the swarm runtime`);

const APP = 'spread';
const BASE_DOMAIN = 'swarm.test';
const SECRET = 's3cr3t-value-for-swarm';

describe.skipIf(missing.length > 0 || notRoot)('swarm runtime on a two-node swarm', () => {
  let work: string;
  let cluster: NetnsSwarm | undefined;
  let registry: Started | undefined;
  let caddy: (Started & { admin: string }) | undefined;
  let driver: SwarmDriver;
  let edgeRef: SwarmEdge | undefined;
  const dns = new UpstreamDns({ onMiss: () => edgeRef?.requestSync(() => undefined) });
  let httpPort: number;
  let builder: DockerBuilder;
  const get = (path = '/') => httpGet(httpPort, `${APP}.${BASE_DOMAIN}`, path);

  async function build(version: number, body: string): Promise<string> {
    const dir = join(work, `src-v${version}`);
    mkdirSync(join(dir, 'www'), { recursive: true });
    writeFileSync(join(dir, 'www/index.html'), `${body}\n`);
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${BASE_IMAGE}\nCOPY www /www\n`);
    const { ref } = await builder.build({ app: APP, version, dir });
    return ref;
  }

  function spec(release: string, ref: string, instances = 3, command?: string): RuntimeSpec {
    return {
      name: APP,
      release,
      artifact: { kind: 'image', ref },
      env: { GREETING: 'hi', API_TOKEN: SECRET },
      maskValues: [SECRET],
      processes: {
        web: {
          command:
            command ??
            'echo "$API_TOKEN" > /www/secret.txt && hostname > /www/host.txt && echo "web up on $PORT" && exec httpd -f -p "$PORT" -h /www',
          instances,
        },
      },
      healthcheck: { path: '/' },
      resources: { memoryMb: 64, cpuMillicores: 250 },
    };
  }

  async function rolledOut(release: string, timeoutMs = 120_000) {
    return waitFor(
      `release ${release}`,
      async () => {
        const s = await driver.get(APP);
        if (s?.rollout.release !== release) return undefined;
        return s.rollout.status === 'ready' || s.rollout.status === 'failed' ? s : undefined;
      },
      timeoutMs,
    );
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'minipaas-rt-swarm-'));
    const registryPort = await freePort();
    cluster = await startNetnsSwarm(work, registryPort);
    registry = await startRegistry(join(work, 'registry'), cluster.registryAddr, registryPort);
    mkdirSync(join(work, 'caddy'));
    caddy = await startCaddy(join(work, 'caddy'));
    httpPort = await freePort();
    await ensureBaseImage(cluster.manager);
    builder = new DockerBuilder({ docker: cluster.manager });
    // As minipaasd runs it: upstreams by SRV from the edge's DNS, so tasks move without a Caddy load.
    await dns.start();
    const edge: SwarmEdge = new SwarmEdge({
      docker: cluster.manager,
      admin: caddy.admin,
      listen: `127.0.0.1:${httpPort}`,
      baseDomain: BASE_DOMAIN,
      dns,
    });
    edgeRef = edge;
    driver = new SwarmDriver({
      docker: cluster.manager,
      registry: `${cluster.registryAddr}:${registry.port}`,
      stopGraceMs: 2000,
      monitorMs: 2000,
      edge,
    });
    driver.start(500);
  }, 300_000);

  afterAll(async () => {
    driver?.stop();
    await dns.close();
    const attempt = async (fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch {
        // best effort: the cluster goes away below
      }
    };
    await attempt(async () => caddy?.stop());
    await attempt(async () => registry?.stop());
    await attempt(async () => cluster?.stop());
    removeDir(work);
  }, 180_000);

  it('runs web=3 over both nodes from the registry, routed by Caddy, with the secret as a Docker secret', async () => {
    if (!cluster || !registry) throw new Error('set-up failed');
    const ref = await build(1, 'one');
    const first = await driver.apply(spec('v1', ref));
    expect(first.rollout.release).toBe('v1');
    const state = await rolledOut('v1');
    expect(state.rollout).toMatchObject({ status: 'ready' });
    const running = state.instances.filter((i) => i.status === 'running');
    expect(running).toHaveLength(3);
    expect(new Set(running.map((i) => i.node)).size).toBe(2);
    expect(running.every((i) => i.processType === 'web' && i.release === 'v1' && i.port)).toBe(true);

    const svc = (await cluster.manager.getService(serviceName(APP, 'web')).inspect()) as {
      Spec: {
        Labels: Record<string, string>;
        TaskTemplate: {
          ContainerSpec: { Image: string; Env: string[]; Secrets: { SecretName: string }[] };
          Resources: { Limits: { MemoryBytes: number; NanoCPUs: number } };
        };
        UpdateConfig: { Order: string; FailureAction: string };
      };
    };
    expect(svc.Spec.TaskTemplate.ContainerSpec.Image).toContain(
      `${cluster.registryAddr}:${registry.port}/minipaas/${APP}:v1`,
    );
    expect(svc.Spec.Labels).toMatchObject({
      'minipaas.app': APP,
      'minipaas.release': 'v1',
      'minipaas.process': 'web',
    });
    expect(svc.Spec.UpdateConfig).toMatchObject({ Order: 'start-first', FailureAction: 'rollback' });
    expect(svc.Spec.TaskTemplate.Resources.Limits).toEqual({
      MemoryBytes: 64 * 1024 * 1024,
      NanoCPUs: 250_000_000,
    });
    expect(JSON.stringify(svc.Spec)).not.toContain(SECRET);
    expect(svc.Spec.TaskTemplate.ContainerSpec.Env).toContain('GREETING=hi');
    expect(svc.Spec.TaskTemplate.ContainerSpec.Secrets.map((s) => s.SecretName)).toEqual([
      expect.stringMatching(/^minipaas-spread-api-token-[0-9a-f]{8}$/),
    ]);

    await waitFor('served through caddy', async () => (await get()).body === 'one\n', 30_000);
    expect((await get('/secret.txt')).body).toBe(`${SECRET}\n`);
    // Caddy round-robins over the three tasks: all of them answer.
    const hosts = new Set<string>();
    for (let i = 0; i < 12; i++) hosts.add((await get('/host.txt')).body.trim());
    expect(hosts.size).toBe(3);
    // Service logs come from every task.
    const logs = await driver.logs(APP, { tail: 50 });
    expect(logs.filter((l) => l.line === 'web up on 5000' && l.processType === 'web').length).toBe(3);
    // Applying the same spec again changes nothing.
    const before = (await cluster.manager.getService(serviceName(APP, 'web')).inspect()) as {
      Version: { Index: number };
    };
    await driver.apply(spec('v1', ref));
    const after = (await cluster.manager.getService(serviceName(APP, 'web')).inspect()) as {
      Version: { Index: number };
    };
    expect(after.Version.Index).toBe(before.Version.Index);
  }, 400_000);

  it('runs app.json cron jobs as scheduled services without touching the rollout', async () => {
    if (!cluster) throw new Error('set-up failed');
    const ref = await build(1, 'one');
    const withCron = {
      ...spec('v1', ref),
      cron: [{ command: 'echo "cron $GREETING"', schedule: '*/2 * * * * *' }],
    };
    await driver.apply(withCron);
    const state = await driver.get(APP);
    expect(state?.rollout).toMatchObject({ release: 'v1', status: 'ready' });
    // The web service was not touched: only the cron job's service was added.
    expect(state?.instances.filter((i) => i.status === 'running' && i.processType === 'web')).toHaveLength(3);
    const scheduler = new CronScheduler({ docker: cluster.manager, refreshMs: 1000 });
    await scheduler.start();
    try {
      const job = await waitFor(
        'two runs of the cron job',
        async () => {
          const j = (await driver.cronJobs()).find((x) => x.service === `minipaas-${APP}--cron-1`);
          return j && j.runs.filter((r) => r.state === 'complete' && r.exitCode === 0).length >= 2
            ? j
            : undefined;
        },
        90_000,
      );
      expect(job).toMatchObject({ schedule: '*/2 * * * * *', skipRunning: true, replicas: 1 });
      expect((await driver.get(APP))?.rollout.status).toBe('ready');
      const logs = await driver.logs(APP, { tail: 100, process: 'cron:1' });
      expect(logs.some((l) => l.line === 'cron hi')).toBe(true);
    } finally {
      scheduler.stop();
    }
    // Without the job the service goes.
    await driver.apply(spec('v1', ref));
    expect((await driver.cronJobs()).map((j) => j.service)).toEqual([]);
  }, 300_000);

  it('rolls a new release start-first under a request loop with 0 failed requests', async () => {
    const ref = await build(2, 'two');
    const caddyConfig = async () => (await fetch(`${caddy?.admin}/config/`)).text();
    const before = await caddyConfig();
    expect(before).toContain('dynamic_upstreams');
    const loop = requestLoop(get);
    try {
      await driver.apply(spec('v2', ref));
      expect((await rolledOut('v2', 180_000)).rollout.status).toBe('ready');
      await sleep(1500);
    } finally {
      await loop.stop();
    }
    const { results, resets } = loop;
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    // The tasks moved by DNS answers, without a Caddy config load: not even a queued connection was reset.
    expect(resets).toEqual([]);
    expect(await caddyConfig()).toBe(before);
    expect(results.length).toBeGreaterThan(20);
    expect(results.at(-1)?.body).toBe('two\n');
  }, 400_000);

  it('a release that never gets healthy fails and Swarm rolls back to the serving one', async () => {
    const ref = await build(3, 'three');
    // Listens on the wrong port: the health check on PORT never passes.
    await driver.apply(spec('v3', ref, 3, 'exec httpd -f -p 9999 -h /www'));
    const state = await rolledOut('v3', 240_000);
    expect(state.rollout.status).toBe('failed');
    expect(state.release).toBe('v2');
    await waitFor(
      'v2 serving again',
      async () => {
        const s = await driver.get(APP);
        return s?.instances.filter((i) => i.status === 'running' && i.release === 'v2').length === 3;
      },
      120_000,
    );
    expect((await get()).body).toBe('two\n');
  }, 400_000);

  it('lists nodes, drains the worker (tasks move to the manager) and activates it again', async () => {
    if (!cluster) throw new Error('set-up failed');
    // Back to a clean v2 spec (the failed v3 spec is what the service holds after a rollback).
    await driver.apply(spec('v2b', await build(4, 'two')));
    await rolledOut('v2b', 180_000);
    const nodes = await listSwarmNodes(cluster.manager);
    expect(nodes.map((n) => [n.role, n.availability, n.state])).toEqual([
      ['manager', 'active', 'ready'],
      ['worker', 'active', 'ready'],
    ]);
    const worker = nodes[1];
    if (!worker) throw new Error('no worker');
    expect(worker.address).toBe(cluster.workerAddr);
    expect(nodes.reduce((n, x) => n + x.tasks, 0)).toBe(3);
    const drained = await setNodeAvailability(cluster.manager, worker.name, 'drain');
    expect(drained.availability).toBe('drain');
    await waitFor(
      'tasks off the drained worker',
      async () => {
        const list = await listSwarmNodes(cluster?.manager as never);
        return list[1]?.tasks === 0 && list[0]?.tasks === 3;
      },
      120_000,
    );
    await waitFor('served from the manager', async () => (await get()).status === 200, 30_000);
    expect((await setNodeAvailability(cluster.manager, worker.id.slice(0, 8), 'active')).availability).toBe(
      'active',
    );
    await expect(setNodeAvailability(cluster.manager, 'no-such-node', 'drain')).rejects.toThrow(/no node/);
  }, 300_000);

  it('when the worker daemon stops, its tasks are rescheduled on the manager and the app keeps answering', async () => {
    if (!cluster) throw new Error('set-up failed');
    const manager = cluster.manager;
    // After the drain every task is on the manager: a restart places the new tasks on both nodes again.
    const restarted = await driver.restart(APP);
    expect(restarted.rollout.status).toBe('rolling');
    await waitFor(
      'tasks on both nodes',
      async () => {
        const s = await driver.get(APP);
        const run = s?.instances.filter((i) => i.status === 'running') ?? [];
        return (
          s?.rollout.status === 'ready' && run.length === 3 && new Set(run.map((i) => i.node)).size === 2
        );
      },
      180_000,
    );
    const loop = requestLoop(get, 50);
    try {
      const pid = Number(readFileSync(join(work, 'node-b', 'docker.pid'), 'utf8'));
      expect(spawnSync('kill', ['-TERM', String(pid)]).status).toBe(0);
      await waitFor(
        'worker down',
        async () => {
          const nodes = await listSwarmNodes(manager);
          return nodes.find((n) => n.role === 'worker')?.state === 'down';
        },
        120_000,
      );
      await waitFor(
        'three tasks running on the manager',
        async () => {
          const s = await driver.get(APP);
          const run = s?.instances.filter((i) => i.status === 'running') ?? [];
          const nodes = await listSwarmNodes(manager);
          const managerName = nodes.find((n) => n.role === 'manager')?.name;
          return run.length === 3 && run.every((i) => i.node === managerName);
        },
        180_000,
      );
      await sleep(2000);
    } finally {
      await loop.stop();
    }
    const { results, resets } = loop;
    expect(results.length).toBeGreaterThan(20);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(resets).toEqual([]);
  }, 400_000);

  it('remove() deletes the services and the app secrets', async () => {
    if (!cluster) throw new Error('set-up failed');
    await driver.remove(APP);
    expect(await driver.get(APP)).toBeNull();
    const secrets = (await cluster.manager.listSecrets()) as { Spec: { Name: string } }[];
    expect(secrets.filter((s) => s.Spec.Name.startsWith(`minipaas-${APP}-`))).toEqual([]);
  }, 200_000);
});
