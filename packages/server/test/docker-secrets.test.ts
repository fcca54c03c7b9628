/**
 * Secrets of a docker-runtime app, on a real Postgres, a real agent and the real Docker engine: the
 * container gets the value, and its log lines show `********` instead, in the log API and when followed,
 * also for containers started later (a secret change) and after the driver is built anew (minipaasd
 * restarting: the masked names are a container label, the values come from the container). The label
 * holds names only. In CI a missing Docker engine fails the file.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, type LogLine, loadConfig, type MinipaasConfig } from '@minipaas/core';
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
import { waitFor } from '../../../test/helpers/platform.ts';
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

const APP = `dks${process.pid}`;
const FIRST = `first_${randomBytes(12).toString('hex')}`;
const SECOND = `second_${randomBytes(12).toString('hex')}`;
const SERVER = `
console.log('token is ' + process.env.API_TOKEN);
setInterval(() => console.log('tick ' + process.env.API_TOKEN), 300);
require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT);
`;

describe.runIf(dockerUp || process.env.CI)('secrets of a docker-runtime app', () => {
  let home: string;
  let config: MinipaasConfig;
  let agent: AgentHandle;
  let cp: ControlPlane;
  let docker: DockerRuntime | null = null;
  let dropDb: () => Promise<void> = async () => {};
  let auth: { authorization: string };

  const logs = async () => {
    const r = await cp.app.inject({ method: 'GET', url: `/api/v1/apps/${APP}/logs?tail=200`, headers: auth });
    expect(r.statusCode, r.body).toBe(200);
    return r.json<{ lines: LogLine[] }>().lines.map((l) => l.line);
  };

  beforeAll(async () => {
    await bootstrapImages({ docker: new Docker() });
    home = await mkdtemp(join(tmpdir(), 'mp-docker-secrets-'));
    config = await loadConfig({
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
    const db = await createTestDatabase('dockersec');
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

  it('the container gets the secret; its logs mask it, followed or not, after a change and a new driver', async () => {
    const api = (method: 'POST' | 'PATCH' | 'GET', url: string, payload?: object) =>
      cp.app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) });
    expect((await api('POST', '/api/v1/apps', { name: APP, runtime: 'docker' })).statusCode).toBe(201);
    expect((await api('PATCH', `/api/v1/apps/${APP}`, { secrets: { API_TOKEN: FIRST } })).statusCode).toBe(
      200,
    );
    const r = await cp.app.inject({
      method: 'POST',
      url: `/api/v1/apps/${APP}/deploy`,
      headers: { ...auth, 'content-type': 'application/gzip' },
      payload: rawTar([
        {
          name: 'Dockerfile',
          body: `FROM ${NODE_IMAGE}\nCOPY server.js /srv/server.js\nCMD ["node", "/srv/server.js"]\n`,
        },
        { name: 'server.js', body: SERVER },
      ]),
    });
    expect(r.statusCode, r.body).toBe(202);
    const d = await waitFor(
      'the deployment',
      async () => {
        const x = (
          await api('GET', `/api/v1/deployments/${r.json<DeploymentView>().id}`)
        ).json<DeploymentView>();
        return ['running', 'failed'].includes(x.status) ? x : null;
      },
      180_000,
    );
    expect(d.status, d.log.join('\n')).toBe('running');

    // The container has the value (the app receives it); its label has only the name.
    const engine = new Docker();
    const containers = await engine.listContainers({ filters: { label: [`minipaas.app=${APP}`] } });
    expect(containers.length).toBeGreaterThan(0);
    const info = await engine.getContainer(containers[0]?.Id as string).inspect();
    expect(info.Config.Env).toContain(`API_TOKEN=${FIRST}`);
    expect(info.Config.Labels['minipaas.masked']).toBe('API_TOKEN');
    expect(JSON.stringify(info.Config.Labels)).not.toContain(FIRST);

    const lines = await waitFor('log lines', async () => {
      const l = await logs();
      return l.some((x) => x.startsWith('tick')) ? l : null;
    });
    expect(lines).toContain('token is ********');
    expect(lines.join('\n')).not.toContain(FIRST);

    // Followed logs are masked too.
    const ac = new AbortController();
    const followed: string[] = [];
    for await (const l of docker?.driver.followLogs(APP, { tail: 5, signal: ac.signal }) ?? []) {
      followed.push(l.line);
      if (followed.length >= 3) ac.abort();
    }
    expect(followed.some((l) => l === 'tick ********')).toBe(true);
    expect(followed.join('\n')).not.toContain(FIRST);

    // A changed secret rolls new containers: their lines mask the new value.
    expect((await api('PATCH', `/api/v1/apps/${APP}`, { secrets: { API_TOKEN: SECOND } })).statusCode).toBe(
      200,
    );
    await waitFor(
      'the new containers to log',
      async () => {
        const now = await engine.listContainers({ filters: { label: [`minipaas.app=${APP}`] } });
        const envs = await Promise.all(
          now.map(async (c) => (await engine.getContainer(c.Id).inspect()).Config.Env),
        );
        return envs.length > 0 && envs.every((e) => e.includes(`API_TOKEN=${SECOND}`));
      },
      60_000,
      500,
    );
    const after = await waitFor('ticks of the new container', async () => {
      const l = (await logs()).join('\n');
      return l.includes('tick ********') ? l : null;
    });
    expect(after).not.toContain(SECOND);
    expect(after).toContain('tick ********');

    // A driver built anew (minipaasd restarted, nothing applied yet) still masks: names from the label.
    const fresh = await createDockerRuntime(config);
    const again = (await fresh?.driver.logs(APP, { tail: 50 })) ?? [];
    expect(again.length).toBeGreaterThan(0);
    expect(again.map((l) => l.line).join('\n')).not.toContain(SECOND);
    expect(again.some((l) => l.line === 'tick ********')).toBe(true);
  }, 300_000);
});
