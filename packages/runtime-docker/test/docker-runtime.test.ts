/**
 * The docker runtime against the real Docker engine and the real node agent's router: a Dockerfile app
 * and a Node app without one deploy and answer through the router, a killed container comes back,
 * 10 deploys and 5 rollbacks under a request loop fail no request, a 64 MiB app allocating 200 MiB is
 * OOM-killed, and `docker inspect` shows the limits. In CI a missing Docker engine fails the file.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { loadConfig, type RuntimeAppState, type RuntimeSpec } from '@minipaas/core';
import Docker from 'dockerode';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapImages, DockerBuilder, DockerDriver, LABEL, NODE_IMAGE } from '../src/index.ts';
import { AgentRouteClient } from '../src/route-client.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const docker = new Docker();
const dockerUp = await docker.ping().then(
  () => true,
  () => false,
);
if (process.env.CI && !dockerUp)
  throw new Error('CI needs a running Docker engine (dockerd) for the docker runtime tests');

const SERVER_JS = `const http = require('node:http');
http.createServer((req, res) => {
  if (req.url === '/slow') return setTimeout(() => res.end('slow ' + process.env.MSG), 300);
  res.end((process.env.MSG || 'hi') + ' from ' + process.env.MINIPAAS_RELEASE);
}).listen(Number(process.env.PORT));
process.on('SIGTERM', () => process.exit(0));
`;

function get(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (${(last as Error).message})` : ''}`);
}

/** Source dirs of the tests, removed in afterAll even when a test fails. */
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mp-src-'));
  dirs.push(d);
  return d;
}

describe.runIf(dockerUp || process.env.CI)('docker runtime (real engine)', () => {
  let home: string;
  let agent: AgentHandle;
  let driver: DockerDriver;
  let builder: DockerBuilder;
  let routerPort: number;
  let baseDomain: string;
  const apps = [
    `mpdt${process.pid}a`,
    `mpdt${process.pid}b`,
    `mpdt${process.pid}c`,
    `mpdt${process.pid}d`,
  ] as const;

  beforeAll(async () => {
    await bootstrapImages({ docker, nodeBin: join(ROOT, 'node_modules/node/bin/node') });
    home = mkdtempSync(join(tmpdir(), 'mp-docker-'));
    const config = await loadConfig({ MINIPAAS_HOME: home });
    baseDomain = config.router.baseDomain;
    agent = await startAgent({
      config,
      router: { host: '127.0.0.1', port: 0 },
      logger: pino({ level: 'silent' }),
      restore: false,
    });
    routerPort = agent.router?.port ?? 0;
    driver = new DockerDriver({
      docker,
      routes: new AgentRouteClient(agent.socketPath),
      stateFile: join(home, 'run', 'docker-state.json'),
      network: 'minipaas-test',
      stopGraceMs: 3000,
      startTimeoutMs: 30_000,
      monitorIntervalMs: 250,
      sampleIntervalMs: 300,
      policy: { backoffMs: [0, 100, 200], fastCrashMs: 2000, maxFastCrashes: 4 },
    });
    driver.start();
    builder = new DockerBuilder({ docker, keepImages: 3 });
  }, 300_000);

  afterAll(async () => {
    driver?.stop();
    for (const a of apps) {
      await driver?.remove(a).catch(() => undefined);
      for (const t of await builder.tags(a).catch(() => [] as string[]))
        await docker
          .getImage(t)
          .remove({ force: true })
          .catch(() => undefined);
    }
    await agent?.close();
    if (home) rmSync(home, { recursive: true, force: true });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function deploy(spec: RuntimeSpec): Promise<RuntimeAppState> {
    await driver.apply(spec);
    const s = await until(`rollout of ${spec.name} ${spec.release}`, async () => {
      const st = await driver.get(spec.name);
      return st && st.rollout.release === spec.release && st.rollout.status !== 'rolling' ? st : null;
    });
    expect(s.rollout.error ?? '').toBe('');
    expect(s.rollout.status).toBe('ready');
    return s;
  }

  function spec(name: string, release: string, ref: string, over: Partial<RuntimeSpec> = {}): RuntimeSpec {
    return {
      name,
      release,
      artifact: { kind: 'image', ref },
      env: { MSG: `hello ${release}` },
      processes: { web: { command: '', instances: 1 } },
      ...over,
    };
  }

  it('builds and runs an app with a Dockerfile, routed by host; a killed container comes back', async () => {
    const app = apps[0];
    const src = tempDir();
    writeFileSync(join(src, 'server.js'), SERVER_JS);
    writeFileSync(
      join(src, 'Dockerfile'),
      `FROM ${NODE_IMAGE}\nCOPY server.js /srv/server.js\nCMD ["node", "/srv/server.js"]\n`,
    );
    const lines: string[] = [];
    const built = await builder.build({ app, version: 1, dir: src, onLine: (l) => lines.push(l) });
    expect(built).toEqual({ ref: `minipaas/${app}:v1`, generated: false });
    expect(lines.join('\n')).toMatch(/Step 1\/\d+ : FROM minipaas\/node:24/);
    const state = await deploy(
      spec(app, 'v1', built.ref, { resources: { memoryMb: 128, cpuMillicores: 500 } }),
    );
    const inst = state.instances.filter((i) => i.status === 'running');
    expect(inst).toHaveLength(1);
    const r = await get(routerPort, `${app}.${baseDomain}`);
    expect(r).toEqual({ status: 200, body: 'hello v1 from v1' });

    // labels and limits, as docker inspect shows them
    const [c] = await docker.listContainers({ filters: { label: [`${LABEL.app}=${app}`] } });
    const d = await docker.getContainer(c?.Id ?? '').inspect();
    expect(d.Config.Labels).toMatchObject({
      [LABEL.app]: app,
      [LABEL.release]: 'v1',
      [LABEL.process]: 'web',
    });
    expect(d.Config.Labels[LABEL.instance]).toMatch(new RegExp(`^${app}-web-`));
    expect(d.HostConfig.Memory).toBe(128 * 1024 * 1024);
    expect(d.HostConfig.NanoCpus).toBe(500_000_000);
    expect(state.instances[0]?.limits).toEqual({ mode: 'docker', memoryMb: 128, cpuMillicores: 500 });

    // kill: the platform starts it again and routes its (new) port
    await docker.getContainer(c?.Id ?? '').kill({ signal: 'SIGKILL' });
    await until('the killed container to run again', async () => {
      const s = await driver.get(app);
      const i = s?.instances[0];
      return i && i.status === 'running' && i.restarts >= 1;
    });
    await until(
      'the route to answer again',
      async () => (await get(routerPort, `${app}.${baseDomain}`)).status === 200,
    );
    const m = await driver.metrics(app);
    expect(m?.instances[0]?.limits?.mode).toBe('docker');
    expect(m?.instances[0]?.samples[0]?.memoryBytes).toBeGreaterThan(1024 * 1024);
    // The sampler keeps a short history per container, and ps shows the latest sample.
    const history = await until('three usage samples', async () => {
      const s = (await driver.metrics(app))?.instances[0]?.samples ?? [];
      return s.length >= 3 ? s : null;
    });
    expect(new Set(history.map((s) => s.ts)).size).toBe(history.length);
    expect((await driver.get(app))?.instances[0]?.usage?.memoryBytes).toBeGreaterThan(1024 * 1024);
    const logs = await driver.logs(app, { tail: 10 });
    expect(logs.every((l) => l.processType === 'web')).toBe(true);
    rmSync(src, { recursive: true, force: true });
  });

  it('builds examples/hello-node without a Dockerfile on the Node base image', async () => {
    const app = apps[1];
    const src = tempDir();
    cpSync(join(ROOT, 'examples/hello-node'), src, { recursive: true });
    const built = await builder.build({
      app,
      version: 1,
      dir: src,
      detected: { stack: 'node', commands: { web: 'node server.js' } },
    });
    expect(built.generated).toBe(true);
    await deploy(
      spec(app, 'v1', built.ref, { processes: { web: { command: 'node server.js', instances: 1 } } }),
    );
    const r = await get(routerPort, `${app}.${baseDomain}`);
    expect(r.status).toBe(200);
    rmSync(src, { recursive: true, force: true });
  });

  it('deploys and rolls back under a request loop with no failed request; a rollback builds nothing', async () => {
    const app = apps[0];
    const host = `${app}.${baseDomain}`;
    let ok = 0;
    const failed: string[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        try {
          const r = await get(routerPort, host, ok % 5 === 0 ? '/slow' : '/');
          if (r.status === 200) ok++;
          else failed.push(`${r.status} ${r.body.slice(0, 80)}`);
        } catch (err) {
          failed.push((err as Error).message);
        }
      }
    })();
    const src = tempDir();
    writeFileSync(join(src, 'server.js'), SERVER_JS);
    writeFileSync(
      join(src, 'Dockerfile'),
      `FROM ${NODE_IMAGE}\nCOPY server.js /srv/server.js\nCMD ["node", "/srv/server.js"]\n`,
    );
    const refs: string[] = [];
    // 10 successive deploys (v2..v11), then 5 rollbacks to kept images (v12..v16).
    for (let v = 2; v <= 11; v++) {
      writeFileSync(join(src, 'version.txt'), String(v));
      const b = await builder.build({ app, version: v, dir: src });
      refs.push(b.ref);
      await deploy(spec(app, `v${v}`, b.ref, { processes: { web: { command: '', instances: 2 } } }));
      expect((await get(routerPort, host)).body).toBe(`hello v${v} from v${v}`);
    }
    const imagesBefore = (await builder.tags(app)).length;
    // rollbacks: old images, started without a build
    const targets = [refs[9], refs[8], refs[7], refs[9], refs[8]] as string[];
    for (const [i, ref] of targets.entries()) {
      await deploy(spec(app, `v${12 + i}`, ref, { processes: { web: { command: '', instances: 2 } } }));
      expect((await get(routerPort, host)).body).toBe(`hello v${12 + i} from v${12 + i}`);
      const serving = await docker.listContainers({ filters: { label: [`${LABEL.app}=${app}`] } });
      expect(serving.map((s) => s.Image)).toEqual([ref, ref]);
    }
    expect((await builder.tags(app)).length).toBe(imagesBefore);
    const [c] = await docker.listContainers({ filters: { label: [`${LABEL.app}=${app}`] } });
    expect(c?.Image).toBe(refs[8]);
    running = false;
    await loop;
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    // retention: 3 tags kept
    await builder.prune(app, [refs[8] as string]);
    expect((await builder.tags(app)).length).toBeLessThanOrEqual(3);
    rmSync(src, { recursive: true, force: true });
  });

  it('a restarted control plane adopts the running containers under a request loop and removes orphans', async () => {
    const app = apps[0];
    const host = `${app}.${baseDomain}`;
    const before = (await driver.get(app))?.instances.map((i) => i.id).sort();
    expect(before?.length).toBeGreaterThan(0);
    let ok = 0;
    const failed: string[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        const r = await get(routerPort, host).catch((err: Error) => ({ status: 0, body: err.message }));
        if (r.status === 200) ok++;
        else failed.push(`${r.status} ${r.body.slice(0, 80)}`);
      }
    })();
    // "minipaasd" goes away: the old driver stops; a new one starts from the same state file.
    driver.stop();
    const orphan = await docker.createContainer({
      Image: NODE_IMAGE,
      Cmd: ['sleep', '60'],
      Labels: { [LABEL.app]: `${app}gone`, [LABEL.release]: 'v1', [LABEL.process]: 'web' },
    });
    driver = new DockerDriver({
      docker,
      routes: new AgentRouteClient(agent.socketPath),
      stateFile: join(home, 'run', 'docker-state.json'),
      network: 'minipaas-test',
      stopGraceMs: 3000,
      startTimeoutMs: 30_000,
      monitorIntervalMs: 250,
      policy: { backoffMs: [0, 100, 200], fastCrashMs: 2000, maxFastCrashes: 4 },
    });
    const adopted = await driver.get(app);
    expect(adopted?.release).toBe('v16');
    expect(adopted?.rollout.status).toBe('ready');
    await driver.tick();
    await driver.tick();
    expect((await driver.get(app))?.instances.map((i) => i.id).sort()).toEqual(before);
    await expect(orphan.inspect()).rejects.toMatchObject({ statusCode: 404 });
    driver.start();
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await loop;
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(5);
  });

  it('mounts a platform volume as the named volume bound to its host directory', async () => {
    const app = apps[3];
    const hostPath = tempDir();
    writeFileSync(join(hostPath, 'hello.txt'), 'from the volume');
    const vol = { id: `v${process.pid}`, project: 'ptest', name: 'data', target: '/app/storage', hostPath };
    const serve =
      "node -e \"require('http').createServer((q,s)=>s.end(require('fs').readFileSync('/app/storage/hello.txt'))).listen(process.env.PORT)\"";
    await deploy(
      spec(app, 'v1', NODE_IMAGE, { processes: { web: { command: serve, instances: 1 } }, volumes: [vol] }),
    );
    expect((await get(routerPort, `${app}.${baseDomain}`)).body).toBe('from the volume');
    const v = await docker.getVolume(`minipaas-vol-ptest-${vol.id}`).inspect();
    expect(v.Options).toMatchObject({ type: 'none', o: 'bind', device: hostPath });
    await driver.remove(app);
    await docker.getVolume(`minipaas-vol-ptest-${vol.id}`).remove();
  });

  it('shows oom-killed for a 64 MiB app that allocates 200 MiB', async () => {
    const app = apps[2];
    const alloc =
      'node -e "setTimeout(()=>{const a=[];for(let i=0;i<20;i++){a.push(Buffer.alloc(10*1024*1024,1))}console.log(\'allocated\',a.length)},1500);setInterval(()=>{},1000)"';
    await deploy(
      spec(app, 'v1', NODE_IMAGE, {
        processes: { worker: { command: alloc, instances: 1 } },
        resources: { memoryMb: 64 },
        restart: 'no',
      }),
    );
    const s = await until('oom-killed', async () => {
      const st = await driver.get(app);
      return st?.instances.find((i) => i.status === 'oom-killed') ? st : null;
    });
    expect(s.instances[0]?.error).toMatch(/OOM killer.*64 MiB/);
    const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABEL.app}=${app}`] } });
    const d = await docker.getContainer(c?.Id ?? '').inspect();
    expect(d.State.OOMKilled).toBe(true);
    expect(d.HostConfig.Memory).toBe(64 * 1024 * 1024);
  });
});
