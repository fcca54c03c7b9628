/**
 * A docker-runtime app through the whole platform: API → durable build queue → build worker → image
 * build (Dockerfile, then a Node app without one) → docker driver → the agent's router, on a real Postgres,
 * a real agent and the real Docker engine. A rollback starts the old image without a build. In CI a
 * missing Docker engine fails the file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import {
  bootstrapImages,
  createDockerRuntime,
  type DockerRuntime,
  NODE_IMAGE,
} from '@minipaas/runtime-docker';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import Docker from 'dockerode';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routerGet, waitFor } from '../../../test/helpers/platform.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { rawTar } from '../../../test/helpers/tarball.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

const dockerUp = await new Docker().ping().then(
  () => true,
  () => false,
);
if (process.env.CI && !dockerUp)
  throw new Error('CI needs a running Docker engine (dockerd) for the docker runtime tests');

const APP = `dk${process.pid}`;
let home: string;
let agent: AgentHandle;
let cp: ControlPlane;
let docker: DockerRuntime | null = null;
let dropDb: () => Promise<void> = async () => {};
let auth: { authorization: string };

async function api<T>(method: 'GET' | 'POST', url: string, payload?: object) {
  const r = await cp.app.inject({
    method,
    url,
    headers: auth,
    ...(payload ? { payload: payload as never } : {}),
  });
  return { status: r.statusCode, body: r.json<T>() };
}

const finished = (id: string) =>
  waitFor(
    `deployment ${id} to finish`,
    async () => {
      const d = (await api<DeploymentView>('GET', `/api/v1/deployments/${id}`)).body;
      return ['running', 'failed', 'cancelled'].includes(d.status) ? d : null;
    },
    120_000,
  );

async function deploy(files: { name: string; body: string }[]): Promise<DeploymentView> {
  const r = await cp.app.inject({
    method: 'POST',
    url: `/api/v1/apps/${APP}/deploy`,
    headers: { ...auth, 'content-type': 'application/gzip' },
    payload: rawTar(files),
  });
  expect(r.statusCode, r.body).toBe(202);
  return finished(r.json<DeploymentView>().id);
}

const page = async () =>
  (await routerGet(agent.router?.port ?? 0, '/', `${APP}.${cp.ctx.config.router.baseDomain}`)).body;

describe.runIf(dockerUp || process.env.CI)('docker runtime through the platform', () => {
  beforeAll(async () => {
    await bootstrapImages({ docker: new Docker() });
    home = await mkdtemp(join(tmpdir(), 'mp-docker-e2e-'));
    const config = await loadConfig({
      MINIPAAS_HOME: home,
      MINIPAAS_ROUTER_PORT: String(await freePort()),
      MINIPAAS_STOP_GRACE_MS: '2000',
      MINIPAAS_START_TIMEOUT_MS: '30000',
      MINIPAAS_LOG_LEVEL: 'silent',
      MINIPAAS_DOCKER: 'on',
      MINIPAAS_DOCKER_NETWORK: 'minipaas-test',
    });
    const logger = pino({ level: 'silent' });
    agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: config.router.port } });
    docker = await createDockerRuntime(config);
    docker?.driver.start();
    const db = await createTestDatabase('dockerrt');
    dropDb = db.drop;
    cp = await createControlPlane({
      config: { ...config, databaseUrl: db.url },
      drivers: [new ProcessDriver(new AgentClient(agent.socketPath)), ...(docker ? [docker.driver] : [])],
      logger,
      reconcile: false,
      ...(docker ? { dockerBuilder: docker.builder } : {}),
    });
    auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  }, 300_000);

  afterAll(async () => {
    await cp?.close();
    docker?.driver.stop();
    await docker?.driver.remove(APP).catch(() => undefined);
    for (const t of (await docker?.builder.tags(APP).catch(() => [])) ?? [])
      await docker?.docker
        .getImage(t)
        .remove({ force: true })
        .catch(() => undefined);
    await agent?.close();
    await dropDb();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('refuses an unknown runtime with a 400 and stores nothing', async () => {
    const r = await api<{ error: { message: string } }>('POST', '/api/v1/apps', {
      name: APP,
      runtime: 'kvm',
    });
    expect(r.status).toBe(400);
    expect((await api('GET', `/api/v1/apps/${APP}`)).status).toBe(404);
  });

  it('builds a Dockerfile app into an image, then a Node app without one, and rolls back without a build', async () => {
    const created = await api<{ runtime: string }>('POST', '/api/v1/apps', { name: APP, runtime: 'docker' });
    expect(created.status).toBe(201);
    expect(created.body.runtime).toBe('docker');
    const server = (mark: string) =>
      `require('http').createServer((q, s) => s.end(${JSON.stringify(mark)})).listen(process.env.PORT);`;
    const d1 = await deploy([
      {
        name: 'Dockerfile',
        body: `FROM ${NODE_IMAGE}\nCOPY server.js /srv/server.js\nCMD ["node", "/srv/server.js"]\n`,
      },
      { name: 'server.js', body: server('from a Dockerfile') },
    ]);
    expect(d1.status, d1.log.join('\n')).toBe('running');
    expect(d1.log.join('\n')).toMatch(new RegExp(`image minipaas/${APP}:v1`));
    expect(await page()).toBe('from a Dockerfile');

    const d2 = await deploy([
      { name: 'package.json', body: JSON.stringify({ name: 'n', scripts: { start: 'node server.js' } }) },
      { name: 'server.js', body: server('generated image') },
    ]);
    expect(d2.status, d2.log.join('\n')).toBe('running');
    expect(d2.log.join('\n')).toMatch(/generated for the node stack/);
    expect(await page()).toBe('generated image');

    const rb = await api<DeploymentView>('POST', `/api/v1/apps/${APP}/rollback`, { release: 1 });
    expect(rb.status).toBeLessThan(300);
    const d3 = await finished(rb.body.id);
    expect(d3.status, d3.log.join('\n')).toBe('running');
    expect(d3.log.join('\n')).toContain('(no build)');
    expect(d3.log.join('\n')).not.toMatch(/Building image/);
    expect(await page()).toBe('from a Dockerfile');

    // A release whose image is gone (retention, or removed by hand) can no longer be rolled back to.
    type Releases = { releases: Array<{ version: number; canRollback: boolean }> };
    const before = (await api<Releases>('GET', `/api/v1/apps/${APP}/releases`)).body.releases;
    expect(before.find((r) => r.version === 2)?.canRollback).toBe(true);
    await new Docker().getImage(`minipaas/${APP}:v2`).remove({ force: true });
    const after = (await api<Releases>('GET', `/api/v1/apps/${APP}/releases`)).body.releases;
    expect(after.find((r) => r.version === 2)?.canRollback).toBe(false);
    const refused = await api<{ error: { message: string } }>('POST', `/api/v1/apps/${APP}/rollback`, {
      release: 2,
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/files or image were pruned/);
  });
  it('minipaas.yaml moves a new app to docker with its own Dockerfile path and no build cache; a later runtime change is a 400', async () => {
    const app = `${APP}y`;
    expect((await api('POST', '/api/v1/apps', { name: app })).status).toBe(201);
    const upload = (files: Array<{ name: string; body?: string; type?: '2' | '5'; linkname?: string }>) =>
      cp.app.inject({
        method: 'POST',
        url: `/api/v1/apps/${app}/deploy`,
        headers: { ...auth, 'content-type': 'application/gzip' },
        payload: rawTar(files),
      });
    const server = `require('http').createServer((q, s) => s.end('from web.Dockerfile')).listen(process.env.PORT);`;
    const files = [
      {
        name: 'minipaas.yaml',
        body: '# settings that travel with the code\nruntime: docker\ndockerfile: deploy/web.Dockerfile\nbuildCache: false\nregion: eu\n',
      },
      { name: 'deploy/', type: '5' as const },
      {
        name: 'deploy/web.Dockerfile',
        body: `FROM ${NODE_IMAGE}\nCOPY server.js /srv/server.js\nCMD ["node", "/srv/server.js"]\n`,
      },
      { name: 'server.js', body: server },
    ];
    // Bad manifests are refused before anything is queued.
    for (const [bad, msg] of [
      ['runtime: docker\ndockerfile: ../../etc/passwd\n', /dockerfile must be a path inside the source/],
      ['runtime: docker\ndockerfile: deploy/missing.Dockerfile\n', /not in the source/],
      ['runtime: [\n', /minipaas.yaml: /],
    ] as const) {
      const r = await upload([{ name: 'minipaas.yaml', body: bad }, ...files.slice(1)]);
      expect(r.statusCode, r.body).toBe(400);
      expect(r.json<{ error: { message: string } }>().error.message).toMatch(msg);
    }
    const link = await upload([
      { name: 'minipaas.yaml', type: '2', linkname: '/etc/shadow' },
      ...files.slice(1),
    ]);
    expect(link.statusCode).toBe(400);
    expect(
      (await api<{ deployments: unknown[] }>('GET', `/api/v1/apps/${app}/deployments`)).body.deployments,
    ).toEqual([]);

    const r = await upload(files);
    expect(r.statusCode, r.body).toBe(202);
    const d = await finished(r.json<DeploymentView>().id);
    const log = d.log.join('\n');
    expect(d.status, log).toBe('running');
    expect(log).toContain('minipaas.yaml: runtime docker');
    expect(log).toContain('ignoring unknown settings region');
    expect(log).toContain('Building image (deploy/web.Dockerfile, no build cache)');
    expect((await api<{ runtime: string }>('GET', `/api/v1/apps/${app}`)).body.runtime).toBe('docker');
    expect(
      (await routerGet(agent.router?.port ?? 0, '/', `${app}.${cp.ctx.config.router.baseDomain}`)).body,
    ).toBe('from web.Dockerfile');

    const change = await upload([{ name: 'minipaas.yaml', body: 'runtime: process\n' }, ...files.slice(1)]);
    expect(change.statusCode).toBe(400);
    expect(change.json<{ error: { message: string } }>().error.message).toMatch(/since its first release/);

    await docker?.driver.remove(app);
    for (const t of (await docker?.builder.tags(app)) ?? [])
      await docker?.docker.getImage(t).remove({ force: true });
  });
  it('runs the Procfile release command and app.json predeploy/postdeploy in one-off containers of the image; a failing one keeps the previous release', async () => {
    const app = `${APP}r`;
    expect((await api('POST', '/api/v1/apps', { name: app, runtime: 'docker' })).status).toBe(201);
    expect(
      (
        await cp.app.inject({
          method: 'PATCH',
          url: `/api/v1/apps/${app}`,
          headers: auth,
          payload: { env: { MSG: 'hi' } },
        })
      ).statusCode,
    ).toBe(200);
    const upload = async (release: string, body: string) => {
      const r = await cp.app.inject({
        method: 'POST',
        url: `/api/v1/apps/${app}/deploy`,
        headers: { ...auth, 'content-type': 'application/gzip' },
        payload: rawTar([
          {
            name: 'Dockerfile',
            body: `FROM ${NODE_IMAGE}\nCOPY server.js /srv/server.js\nCMD ["node", "/srv/server.js"]\n`,
          },
          {
            name: 'server.js',
            body: `require('http').createServer((q, s) => s.end(${JSON.stringify(body)})).listen(process.env.PORT);`,
          },
          { name: 'Procfile', body: `# web runs the image CMD\nrelease: ${release}\n` },
          {
            name: 'app.json',
            body: JSON.stringify({
              scripts: {
                dokku: { predeploy: 'echo predeploy in $(hostname)', postdeploy: 'echo postdeploy $MSG' },
              },
            }),
          },
        ]),
      });
      expect(r.statusCode, r.body).toBe(202);
      return finished(r.json<DeploymentView>().id);
    };
    const ok = await upload('echo migrating with $MSG && test -f /srv/server.js', 'v1 page');
    const log = ok.log.join('\n');
    expect(ok.status, log).toBe('running');
    expect(log).toContain('Running release command: echo migrating with $MSG');
    expect(log).toContain('migrating with hi');
    expect(log).toMatch(/predeploy in [0-9a-f]{12}/);
    expect(log).toContain('postdeploy hi');
    const host = `${app}.${cp.ctx.config.router.baseDomain}`;
    expect((await routerGet(agent.router?.port ?? 0, '/', host)).body).toBe('v1 page');

    const bad = await upload('echo about to fail; exit 3', 'v2 page');
    expect(bad.status).toBe('failed');
    expect(bad.log.join('\n')).toContain('release command exited with code 3');
    expect((await routerGet(agent.router?.port ?? 0, '/', host)).body).toBe('v1 page');
    // no one-off container is left behind
    const left = await new Docker().listContainers({
      all: true,
      filters: { label: [`minipaas.oneoff=${app}`] },
    });
    expect(left).toEqual([]);

    await docker?.driver.remove(app);
    for (const t of (await docker?.builder.tags(app)) ?? [])
      await docker?.docker.getImage(t).remove({ force: true });
  });
});
