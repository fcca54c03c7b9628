/**
 * The docker runtime end to end through the real programs (`minipaas up`, the CLI, the build worker
 * process): `images:bootstrap`, `apps create --runtime docker`, a Dockerfile app deployed and answering
 * through the router, a killed container restarted by minipaasd's supervision (its driver loaded lazily
 * after the build worker's rollout), `ps`, kill -9 of minipaasd under a request loop (0 failed requests,
 * the same containers afterwards), and `apps destroy` removing the containers. In CI a missing Docker
 * engine fails the file.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InstanceInfo } from '@minipaas/core';
import { engineVersion } from '@minipaas/runtime-docker/light';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Platform, routerGet, startPlatform, waitFor } from '../helpers/platform.ts';

const dockerUp = await engineVersion('/var/run/docker.sock').then(
  () => true,
  () => false,
);
if (process.env.CI && !dockerUp)
  throw new Error('CI needs a running Docker engine (dockerd) for the docker e2e test');

const APP = `dke2e${process.pid}`;
const docker = new Docker();
let p: Platform;
let work: string;

const SERVER = `const http = require('node:http');
http.createServer((req, res) => res.end('hello ' + process.env.MSG + ' from ' + process.env.MINIPAAS_RELEASE))
  .listen(Number(process.env.PORT));
process.on('SIGTERM', () => process.exit(0));
`;

async function ok(args: string[]): Promise<string> {
  const r = await p.cli(args, { timeoutMs: 600_000 });
  expect(r.code, `minipaas ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

async function containers() {
  return docker.listContainers({ all: true, filters: { label: [`minipaas.app=${APP}`] } });
}

describe.runIf(dockerUp || process.env.CI)('docker runtime through minipaas up and the CLI', () => {
  beforeAll(async () => {
    p = await startPlatform({ MINIPAAS_DOCKER: 'on', MINIPAAS_DOCKER_NETWORK: 'minipaas-e2e' });
    work = await mkdtemp(join(tmpdir(), 'mp-e2e-docker-'));
  }, 120_000);

  afterAll(async () => {
    for (const c of (await containers().catch(() => [])) ?? [])
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    await p?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('deploys a Dockerfile app, restarts a killed container, and removes it with the app', async () => {
    // Cached by tag: the first run on a machine builds the images with debootstrap (minutes).
    const boot = JSON.parse(await ok(['images:bootstrap', '--json'])) as { images?: unknown };
    expect(JSON.stringify(boot)).toContain('minipaas/node');

    await ok(['apps', 'create', APP, '--runtime', 'docker']);
    await ok(['env:set', APP, 'MSG=world']);
    const dir = join(work, 'app');
    await mkdir(dir);
    await writeFile(join(dir, 'server.js'), SERVER);
    await writeFile(
      join(dir, 'Dockerfile'),
      'FROM minipaas/node:24\nWORKDIR /app\nCOPY server.js .\nCMD ["node", "server.js"]\n',
    );
    await ok(['deploy', dir, '--app', APP]);
    const host = `${APP}.localhost:${p.routerPort}`;
    expect((await routerGet(p.routerPort, '/', host)).body).toBe('hello world from v1');
    // path routing too: /apps/APP/ on the router's own address
    expect((await routerGet(p.routerPort, `/apps/${APP}/`)).body).toBe('hello world from v1');

    const running = (await containers()).filter((c) => c.State === 'running');
    expect(running).toHaveLength(1);
    // Mounts cannot escalate (issue 11): not privileged, no added capability, no host bind, no host network.
    const hc = (await docker.getContainer(running[0]?.Id as string).inspect()).HostConfig;
    expect(hc.Privileged).toBe(false);
    expect(hc.CapAdd ?? []).toEqual([]);
    expect(hc.Binds ?? []).toEqual([]);
    expect(hc.NetworkMode).not.toBe('host');
    expect(hc.PidMode ?? '').toBe('');
    // minipaasd loads its docker driver once the state file names the app, then supervises the container.
    await docker.getContainer(running[0]?.Id as string).kill({ signal: 'SIGKILL' });
    await waitFor(
      'the killed container to be restarted',
      async () => {
        const r = await routerGet(p.routerPort, '/', host).catch(() => null);
        return r?.status === 200 ? r : null;
      },
      60_000,
    );
    const ps = JSON.parse(await ok(['ps', APP, '--json'])) as { instances: InstanceInfo[] };
    expect(ps.instances.length).toBe(1);
    expect(ps.instances[0]?.restarts).toBeGreaterThanOrEqual(1);

    // kill -9 of minipaasd under a request loop: the agent's router keeps serving the containers, the
    // supervisor starts minipaasd again, its driver adopts the same containers, and no request fails.
    const before = (await containers()).map((c) => c.Id).sort();
    let served = 0;
    const failed: string[] = [];
    let looping = true;
    const loop = (async () => {
      while (looping) {
        const r = await routerGet(p.routerPort, '/', host).catch((err: Error) => ({
          status: 0,
          body: err.message,
        }));
        if (r.status === 200) served++;
        else failed.push(`${r.status} ${r.body.slice(0, 80)}`);
      }
    })();
    const serverPidFile = join(p.home, 'run', 'minipaasd.pid');
    const oldServer = Number((await readFile(serverPidFile, 'utf8')).trim());
    process.kill(oldServer, 'SIGKILL');
    await waitFor(
      'minipaasd to be started again',
      async () => {
        const pid = Number((await readFile(serverPidFile, 'utf8').catch(() => '')).trim());
        return pid && pid !== oldServer && (await p.api('GET', `/api/v1/apps/${APP}`)).status === 200;
      },
      60_000,
    );
    // a few reconcile ticks of the new minipaasd (every 5 s) under the loop
    await new Promise((r) => setTimeout(r, 6000));
    looping = false;
    await loop;
    expect(failed).toEqual([]);
    expect(served).toBeGreaterThan(20);
    expect((await containers()).map((c) => c.Id).sort()).toEqual(before);

    await ok(['apps', 'destroy', APP, '--confirm', APP]);
    await waitFor('the app containers to be removed', async () => (await containers()).length === 0, 30_000);
  }, 900_000);
});
