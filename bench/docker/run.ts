/**
 * Docker runtime bench: examples/hello-node from "start it" to its first 200, side by side:
 * - docker runtime: DockerDriver.apply of the built image → first 200 through the agent's router;
 * - process runtime: the node agent runs the same source as a process → first 200 through the router;
 * - plain `docker run` of the same image (Engine API create + start, port published) → first 200 direct.
 * Median of ROUNDS cold starts each (a fresh app per round). Writes bench/results/docker.json.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '@minipaas/agent';
import { loadConfig } from '@minipaas/core';
import { AgentRouteClient, bootstrapImages, DockerBuilder, DockerDriver } from '@minipaas/runtime-docker';
import { AgentClient } from '@minipaas/runtime-process';
import Docker from 'dockerode';
import pino from 'pino';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const ROOT = join(import.meta.dirname, '../..');
const docker = new Docker();

function get(port: number, host?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/', agent: false, ...(host ? { headers: { host } } : {}) },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function until200(port: number, host?: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if ((await get(port, host)) === 200) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('no 200 within 60 s');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

await bootstrapImages({ docker, nodeBin: join(ROOT, 'node_modules/node/bin/node') });
const home = mkdtempSync(join(tmpdir(), 'mp-bench-docker-'));
const config = await loadConfig({ MINIPAAS_HOME: home, MINIPAAS_LOG_LEVEL: 'silent' });
const agent = await startAgent({
  config,
  logger: pino({ level: 'silent' }),
  router: { host: '127.0.0.1', port: 0 },
});
const routerPort = agent.router?.port ?? 0;
const driver = new DockerDriver({
  docker,
  routes: new AgentRouteClient(agent.socketPath),
  stateFile: join(home, 'run', 'docker-state.json'),
  network: 'minipaas-bench',
  stopGraceMs: 2000,
  startTimeoutMs: 30_000,
  monitorIntervalMs: 1000,
});
const builder = new DockerBuilder({ docker });
const src = mkdtempSync(join(tmpdir(), 'mp-bench-src-'));
cpSync(join(ROOT, 'examples/hello-node'), src, { recursive: true });
let t = performance.now();
const built = await builder.build({
  app: 'benchhello',
  version: 1,
  dir: src,
  detected: { stack: 'node', commands: { web: 'node server.js' } },
});
const buildMs = performance.now() - t;

const results = { dockerRuntime: [] as number[], processRuntime: [] as number[], dockerRun: [] as number[] };
const agentClient = new AgentClient(agent.socketPath);
try {
  for (let i = 0; i < ROUNDS; i++) {
    const app = `benchd${i}`;
    t = performance.now();
    await driver.apply({
      name: app,
      release: 'v1',
      artifact: { kind: 'image', ref: built.ref },
      env: {},
      processes: { web: { command: 'node server.js', instances: 1 } },
    });
    await until200(routerPort, `${app}.${config.router.baseDomain}`);
    results.dockerRuntime.push(performance.now() - t);
    await driver.remove(app);

    const papp = `benchp${i}`;
    const dir = join(home, 'releases', papp, 'v1');
    cpSync(src, dir, { recursive: true });
    t = performance.now();
    await agentClient.putApp({
      name: papp,
      release: 'v1',
      dir,
      env: {},
      processes: { web: { command: `${process.execPath} server.js`, instances: 1 } },
    });
    await until200(routerPort, `${papp}.${config.router.baseDomain}`);
    results.processRuntime.push(performance.now() - t);
    await agentClient.deleteApp(papp);

    t = performance.now();
    const c = await docker.createContainer({
      Image: built.ref,
      Cmd: ['node', 'server.js'],
      Env: ['PORT=5000'],
      ExposedPorts: { '5000/tcp': {} },
      HostConfig: { PortBindings: { '5000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    });
    await c.start();
    const port = Number((await c.inspect()).NetworkSettings.Ports['5000/tcp']?.[0]?.HostPort);
    await until200(port);
    results.dockerRun.push(performance.now() - t);
    await c.remove({ force: true });
  }
} finally {
  await agent.close();
  await docker
    .getImage(built.ref)
    .remove({ force: true })
    .catch(() => undefined);
  rmSync(src, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
}
const out = {
  date: new Date().toISOString(),
  rounds: ROUNDS,
  imageBuildMs: Math.round(buildMs),
  medianMs: {
    dockerRuntime: Math.round(median(results.dockerRuntime)),
    processRuntime: Math.round(median(results.processRuntime)),
    dockerRun: Math.round(median(results.dockerRun)),
  },
  samplesMs: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map(Math.round)])),
};
writeFileSync(join(ROOT, 'bench/results/docker.json'), `${JSON.stringify(out, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
