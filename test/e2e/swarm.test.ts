/**
 * The swarm runtime end to end through the real programs (`minipaas up` with `swarm.*` config, the CLI, the
 * build worker): a two-node swarm (two dockerd in network namespaces, the manager's API over TLS with the
 * `certs` certificates), Debian's docker-registry, Caddy as the edge. `apps create --runtime swarm`, a
 * Dockerfile deploy (built by the docker runtime's builder on this machine's engine, pushed to the registry)
 * and `scale web=3` spread the app over both nodes, answering through Caddy; `nodes`, `nodes:drain` (the
 * tasks move to the manager, the app keeps answering) and `nodes:activate`; a service carrying
 * swarm-cronjob labels (what `code cron` writes) is run by minipaasd's scheduler and its runs show in
 * `minipaas cron`; `apps destroy` removes the services. In CI a missing component fails the file.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findOnPath } from '@minipaas/swarm';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BASE_IMAGE,
  ensureBaseImage,
  freePort,
  httpGet,
  requestLoop,
  type Started,
  sleep,
  startCaddy,
  startRegistry,
} from '../../packages/swarm/test/helpers/lab.ts';
import { type NetnsSwarm, startNetnsSwarm } from '../../packages/swarm/test/helpers/netns-swarm.ts';
import { type Platform, startPlatform, waitFor } from '../helpers/platform.ts';

const tools = ['dockerd', 'docker-registry', 'caddy', 'busybox', 'ip', 'nsenter', 'openssl'];
const missing = tools.filter((t) => !findOnPath(t));
const notRoot = process.getuid?.() !== 0;
const local = new Docker({ socketPath: '/var/run/docker.sock' });
const engineUp = await local.ping().then(
  () => true,
  () => false,
);
if ((missing.length || notRoot || !engineUp) && process.env.CI)
  throw new Error(
    `CI needs root, the Docker engine and ${missing.join(', ') || 'nothing missing'} for the swarm e2e test`,
  );

const APP = `swe2e${process.pid}`;

interface NodeView {
  id: string;
  name: string;
  role: string;
  availability: string;
  state: string;
  tasks: number;
}

describe.skipIf(missing.length > 0 || notRoot || !engineUp)(
  'swarm runtime through minipaas up and the CLI',
  () => {
    let work: string;
    let cluster: NetnsSwarm | undefined;
    let pull: Started | undefined;
    let push: Started | undefined;
    let caddy: (Started & { admin: string }) | undefined;
    let httpPort: number;
    let p: Platform | undefined;
    const get = (path = '/') => httpGet(httpPort, `${APP}.localhost`, path);

    async function ok(args: string[]): Promise<string> {
      const r = await (p as Platform).cli(args, { timeoutMs: 600_000 });
      expect(r.code, `minipaas ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
      return r.stdout;
    }

    async function nodes(): Promise<NodeView[]> {
      return (JSON.parse(await ok(['nodes', '--json'])) as { nodes: NodeView[] }).nodes;
    }

    async function taskNodes(): Promise<string[]> {
      const tasks = (await cluster?.manager.listTasks({
        filters: JSON.stringify({ service: [`minipaas-${APP}-web`], 'desired-state': ['running'] }),
      })) as { NodeID: string; Status: { State: string } }[];
      return tasks.filter((t) => t.Status.State === 'running').map((t) => t.NodeID);
    }

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'mp-e2e-swarm-'));
      const registryPort = await freePort();
      cluster = await startNetnsSwarm(work, registryPort);
      // One registry storage, two addresses: the nodes pull at the host's namespace-side address (their
      // --insecure-registry), this machine's engine pushes over loopback (no TLS needed there).
      pull = await startRegistry(join(work, 'registry'), cluster.registryAddr, registryPort);
      push = await startRegistry(join(work, 'registry'), '127.0.0.1');
      await mkdir(join(work, 'caddy'));
      caddy = await startCaddy(join(work, 'caddy'));
      httpPort = await freePort();
      await ensureBaseImage(local);
      p = await startPlatform({
        MINIPAAS_DOCKER: 'on',
        MINIPAAS_START_TIMEOUT_MS: '90000',
        MINIPAAS_SWARM_HOST: `tcp://${cluster.managerAddr}:2376`,
        MINIPAAS_SWARM_TLS_DIR: cluster.certs,
        MINIPAAS_SWARM_REGISTRY: `${cluster.registryAddr}:${registryPort}`,
        MINIPAAS_SWARM_PUSH_REGISTRY: `127.0.0.1:${push.port}`,
        MINIPAAS_SWARM_CADDY_ADMIN: caddy.admin,
        MINIPAAS_SWARM_LISTEN: `127.0.0.1:${httpPort}`,
        MINIPAAS_SWARM_EDGE_DNS: `127.0.0.1:${await freePort()}`,
      });
    }, 300_000);

    afterAll(async () => {
      const attempt = async (fn: () => Promise<unknown>): Promise<void> => {
        try {
          await fn();
        } catch {
          // best effort: the cluster goes away below
        }
      };
      await attempt(async () => p?.stop());
      await attempt(async () => caddy?.stop());
      await attempt(async () => push?.stop());
      await attempt(async () => pull?.stop());
      await attempt(async () => cluster?.stop());
      // The app's images on this machine's engine: the build and its registry tag.
      const images = (await local.listImages().catch(() => [])) as { Id: string; RepoTags?: string[] }[];
      for (const img of images.filter((i) => i.RepoTags?.some((t) => t.includes(`minipaas/${APP}:`))))
        await attempt(() => local.getImage(img.Id).remove({ force: true }));
      if (work) await rm(work, { recursive: true, force: true });
    }, 180_000);

    it('deploys a Dockerfile app with runtime swarm and web=3 spreads over both nodes behind Caddy', async () => {
      await ok(['apps', 'create', APP, '--runtime', 'swarm']);
      await ok(['env:set', APP, 'MSG=hello']);
      const dir = join(work, 'app');
      await mkdir(join(dir, 'www'), { recursive: true });
      await writeFile(join(dir, 'www/index.html'), 'swarm app\n');
      // An app.json cron job: a scheduled service of the app, run by minipaasd's scheduler.
      await writeFile(
        join(dir, 'app.json'),
        JSON.stringify({ cron: [{ command: 'echo "app cron $MSG"', schedule: '*/2 * * * * *' }] }),
      );
      await writeFile(
        join(dir, 'Dockerfile'),
        `FROM ${BASE_IMAGE}\nCOPY www /www\nCMD ["sh", "-c", "echo $MSG > /www/msg.txt; hostname > /www/host.txt; exec httpd -f -p $PORT -h /www"]\n`,
      );
      await ok(['deploy', dir, '--app', APP]);
      await waitFor('the app through Caddy', async () => (await get()).body === 'swarm app\n', 60_000, 200);
      expect((await get('/msg.txt')).body).toBe('hello\n');
      await ok(['scale', APP, 'web=3']);
      await waitFor(
        'three tasks on two nodes',
        async () => {
          const n = await taskNodes();
          return n.length === 3 && new Set(n).size === 2;
        },
        120_000,
        500,
      );
      const ps = JSON.parse(await ok(['ps', APP, '--json'])) as {
        instances: { processType: string; status: string; node?: string; release: string }[];
      };
      const running = ps.instances.filter((i) => i.status === 'running' && i.processType === 'web');
      expect(running).toHaveLength(3);
      expect(new Set(running.map((i) => i.node)).size).toBe(2);
      expect(running.every((i) => i.release === 'v1')).toBe(true);
      // Caddy follows the tasks: every one of them answers.
      await waitFor(
        'three tasks answering',
        async () => {
          const hosts = new Set<string>();
          for (let i = 0; i < 12; i++) hosts.add((await get('/host.txt')).body.trim());
          return hosts.size === 3;
        },
        30_000,
        500,
      );
    }, 600_000);

    it('nodes lists both nodes; nodes:drain moves the tasks to the manager while the app answers', async () => {
      const list = await nodes();
      expect(list.map((n) => [n.role, n.availability, n.state])).toEqual([
        ['manager', 'active', 'ready'],
        ['worker', 'active', 'ready'],
      ]);
      // The three web tasks, and a run of the app's cron job when one is going.
      expect(list.reduce((s, n) => s + n.tasks, 0)).toBeGreaterThanOrEqual(3);
      const worker = list[1] as NodeView;
      const text = await ok(['nodes']);
      expect(text).toMatch(/NAME\s+ID\s+ROLE\s+AVAILABILITY/);
      const loop = requestLoop(get, 50);
      try {
        const drained = JSON.parse(await ok(['nodes:drain', worker.name, '--json'])) as { node: NodeView };
        expect(drained.node.availability).toBe('drain');
        await waitFor(
          'all tasks on the manager',
          async () => {
            const after = await nodes();
            const web = await taskNodes();
            const manager = after[0]?.id;
            return after[1]?.tasks === 0 && web.length === 3 && web.every((n) => n === manager)
              ? after
              : null;
          },
          120_000,
          500,
        );
        await sleep(2000);
      } finally {
        await loop.stop();
      }
      const results = loop.results.map((r) => r.status);
      expect(results.length).toBeGreaterThan(20);
      expect(results.filter((s) => s !== 200)).toEqual([]);
      // Tasks move by minipaasd's DNS answers (swarm.edgeDns), without a Caddy config load: no reset at all.
      expect(loop.resets).toEqual([]);
      const active = JSON.parse(await ok(['nodes:activate', worker.id.slice(0, 10), '--json'])) as {
        node: NodeView;
      };
      expect(active.node.availability).toBe('active');
      const bad = await p?.cli(['nodes:drain', 'no-such-node']);
      expect(bad?.code).not.toBe(0);
      expect(bad?.stderr).toMatch(/no node "no-such-node"/);
    }, 300_000);

    it('minipaasd runs a service labelled like "code cron" on its schedule; minipaas cron shows the runs', async () => {
      const manager = cluster?.manager as Docker;
      const image = `${cluster?.registryAddr}:${pull?.port}/minipaas/${APP}:v1`;
      const name = `${APP}-report`;
      await manager.createService({
        Name: name,
        Labels: {
          'swarm.cronjob.enable': 'true',
          'swarm.cronjob.schedule': '*/2 * * * * *',
          'swarm.cronjob.skip-running': 'true',
          'swarm.cronjob.replicas': '1',
        },
        TaskTemplate: {
          ContainerSpec: { Image: image, Command: ['sh', '-c', 'echo report run'] },
          RestartPolicy: { Condition: 'none' },
        },
        Mode: { Replicated: { Replicas: 0 } },
      } as never);
      try {
        const job = await waitFor(
          'two finished runs',
          async () => {
            const { jobs } = JSON.parse(await ok(['cron', '--json'])) as {
              jobs: { service: string; schedule: string; runs: { state: string; exitCode?: number }[] }[];
            };
            const j = jobs.find((x) => x.service === name);
            return j && j.runs.filter((r) => r.state === 'complete').length >= 2 ? j : null;
          },
          90_000,
          1000,
        );
        expect(job.schedule).toBe('*/2 * * * * *');
        expect(job.runs.filter((r) => r.state === 'complete').every((r) => r.exitCode === 0)).toBe(true);
        expect(await ok(['cron'])).toContain(`${name}  "*/2 * * * * *"  skip-running`);
        // The app.json cron job of the deployed app runs the same way, with the app's env.
        await waitFor(
          'runs of the app.json cron job',
          async () => {
            const { jobs } = JSON.parse(await ok(['cron', '--json'])) as {
              jobs: { service: string; runs: { state: string; exitCode?: number }[] }[];
            };
            const j = jobs.find((x) => x.service === `minipaas-${APP}--cron-1`);
            return j && j.runs.filter((r) => r.state === 'complete' && r.exitCode === 0).length >= 2
              ? j
              : null;
          },
          90_000,
          1000,
        );
        const logs = await ok(['logs', APP, '-n', '200']);
        expect(logs).toContain('app cron hello');
      } finally {
        await manager.getService(name).remove();
      }
    }, 300_000);

    it('apps destroy removes the swarm services', async () => {
      await ok(['apps', 'destroy', APP, '--confirm', APP]);
      await waitFor(
        'services gone',
        async () => {
          const list = (await cluster?.manager.listServices({
            filters: JSON.stringify({ label: [`minipaas.app=${APP}`] }),
          })) as unknown[];
          return list.length === 0;
        },
        60_000,
        500,
      );
    }, 200_000);
  },
);
