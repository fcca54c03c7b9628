/**
 * minipaasd's lazily loaded docker driver on the real engine: it answers health and empty lists without
 * loading dockerode, loads when the shared state file names an app, and reports a missing engine per
 * `docker.enabled`. In CI a missing Docker engine fails the file.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { homePaths, loadConfig } from '@minipaas/core';
import { afterAll, describe, expect, it } from 'vitest';
import { engineVersion, LazyDockerDriver, lazyDockerRuntime } from '../src/light.ts';

const dockerUp = await engineVersion('/var/run/docker.sock').then(
  () => true,
  () => false,
);
if (process.env.CI && !dockerUp)
  throw new Error('CI needs a running Docker engine (dockerd) for the docker runtime tests');

const homes: string[] = [];
function home(): string {
  const h = mkdtempSync(join(tmpdir(), 'minipaas-lazy-docker-'));
  homes.push(h);
  return h;
}
afterAll(() => {
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

describe('lazyDockerRuntime without an engine', () => {
  const missing = '/nonexistent/docker.sock';

  it('is null on auto, an error on on, null on off', async () => {
    const h = home();
    expect(
      await lazyDockerRuntime(await loadConfig({ MINIPAAS_HOME: h, MINIPAAS_DOCKER_SOCKET: missing })),
    ).toBeNull();
    await expect(
      lazyDockerRuntime(
        await loadConfig({ MINIPAAS_HOME: h, MINIPAAS_DOCKER_SOCKET: missing, MINIPAAS_DOCKER: 'on' }),
      ),
    ).rejects.toMatchObject({ code: 'MINIPAAS_ERR_DOCKER_UNAVAILABLE' });
    expect(
      await lazyDockerRuntime(await loadConfig({ MINIPAAS_HOME: h, MINIPAAS_DOCKER: 'off' })),
    ).toBeNull();
  });
});

describe.runIf(dockerUp || process.env.CI)('LazyDockerDriver (real engine)', () => {
  it('answers health, list, get, remove and metrics without loading the driver', async () => {
    const driver = await lazyDockerRuntime(await loadConfig({ MINIPAAS_HOME: home() }));
    expect(driver).toBeInstanceOf(LazyDockerDriver);
    const d = driver as LazyDockerDriver;
    d.start();
    const health = await d.health();
    expect(health.ok).toBe(true);
    expect(health.version).toMatch(/^docker \d+\./);
    expect(await d.list()).toEqual([]);
    expect(await d.get('web')).toBeNull();
    await d.remove('web');
    expect(await d.metrics('web')).toBeNull();
    expect(d.loaded).toBe(false);
    d.stop();
  });

  it('loads the real driver once the state file names a docker app, and lists through it', async () => {
    const h = home();
    const driver = (await lazyDockerRuntime(await loadConfig({ MINIPAAS_HOME: h }), {
      supervise: true,
    })) as LazyDockerDriver;
    const run = homePaths(h).run;
    mkdirSync(run, { recursive: true });
    // An app the state file names but no container runs (a build worker's rollout that was torn down).
    writeFileSync(join(run, 'docker-state.json'), JSON.stringify({ ghost: { release: 'v1', digest: 'x' } }));
    expect(await driver.get('other')).toBeNull();
    expect(driver.loaded).toBe(false);
    const list = await driver.list();
    expect(driver.loaded).toBe(true);
    expect(list.every((s) => s.name !== 'other')).toBe(true);
    const health = await driver.health();
    expect(health.ok).toBe(true);
    driver.stop();
  });
});
