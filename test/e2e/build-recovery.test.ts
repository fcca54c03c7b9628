/**
 * End-to-end: the durable build queue survives its processes dying, with the real programs (`minipaas up`
 * → minipaasd → minipaas-build-worker). With builds.maxConcurrent=1, four apps are deployed (one
 * building, three queued); then the build worker, and later minipaasd, are killed with SIGKILL. Every
 * deployment ends `running`, `failed` (with the reason) or `cancelled`, none stays queued or building,
 * and no app runs two releases.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeploymentView } from '@minipaas/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGates, type Gates } from '../helpers/gated-app.ts';
import { type Platform, startPlatform, waitFor } from '../helpers/platform.ts';

let p: Platform;
let gates: Gates;
const FINAL = ['running', 'failed', 'cancelled', 'stopped'];

async function pidOf(name: string): Promise<number> {
  return Number((await readFile(join(p.home, 'run', `${name}.pid`), 'utf8')).trim());
}

/** The state letter in /proc/PID/stat (Z: a zombie, gone but not reaped), or `gone`. */
function procState(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /s, '')
      .slice(0, 1);
  } catch {
    return 'gone';
  }
}

/** True while the process runs (a zombie does not count). */
function alive(pid: number): boolean {
  const state = procState(pid);
  return state !== 'gone' && state !== 'Z';
}

async function deployGated(app: string, label: string): Promise<DeploymentView> {
  const r = await fetch(`${p.apiUrl}/api/v1/apps/${app}/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/gzip' },
    body: new Uint8Array(gates.app(label)),
  });
  expect(r.status, await r.clone().text()).toBe(202);
  return (await r.json()) as DeploymentView;
}

async function get(id: string): Promise<DeploymentView> {
  return (await p.api<DeploymentView>('GET', `/api/v1/deployments/${id}`)).body;
}

async function statuses(ids: string[]): Promise<DeploymentView[]> {
  return Promise.all(ids.map(get));
}

/** Every deployment final; every app serves exactly one release (the one the API says). */
async function expectSettled(ids: string[], apps: string[]): Promise<DeploymentView[]> {
  const done = await waitFor(
    'every deployment to finish',
    async () => {
      const all = await statuses(ids).catch(() => null);
      return all?.every((d) => FINAL.includes(d.status)) ? all : null;
    },
    180_000,
    250,
  );
  for (const d of done) if (d.status === 'failed') expect(d.error).toBeTruthy();
  for (const app of apps) {
    const a = (await p.api<{ currentRelease: number | null }>('GET', `/api/v1/apps/${app}`)).body;
    const inst = (
      await p.api<{ instances: Array<{ release: string; status: string }> }>(
        'GET',
        `/api/v1/apps/${app}/instances`,
      )
    ).body.instances;
    const releases = new Set(inst.filter((i) => i.status !== 'stopped').map((i) => i.release));
    expect(releases.size, `${app}: ${JSON.stringify(inst)}`).toBeLessThanOrEqual(1);
    if (a.currentRelease) expect([...releases]).toEqual([`v${a.currentRelease}`]);
  }
  return done;
}

beforeAll(async () => {
  gates = await createGates();
  p = await startPlatform({ MINIPAAS_BUILDS_MAX_CONCURRENT: '1', MINIPAAS_BUILD_RETRIES: '1' });
  for (const app of ['ra', 'rb', 'rc', 'rd'])
    expect((await p.api('POST', '/api/v1/apps', { name: app })).status).toBe(201);
}, 90_000);

afterAll(async () => {
  for (const l of ['a1', 'b1', 'c1', 'd1', 'a2', 'b2', 'c2', 'd2', 'a3', 'b3', 'c3', 'd3', 'a4', 'a5'])
    await gates?.open(l);
  await p?.stop();
  await gates?.close();
});

describe('build queue recovery (real processes)', () => {
  it('kill -9 of the build worker: the cut-off build is retried, the queued ones still run', async () => {
    const apps = ['ra', 'rb', 'rc', 'rd'];
    const labels = ['a1', 'b1', 'c1', 'd1'];
    const ds: DeploymentView[] = [];
    for (const [i, app] of apps.entries()) ds.push(await deployGated(app, labels[i] as string));
    const ids = ds.map((d) => d.id);
    await waitFor('the first build to wait in its install script', async () => gates.started('a1'), 60_000);
    const before = await statuses(ids);
    expect(before.map((d) => d.status)).toEqual(['building', 'queued', 'queued', 'queued']);
    expect(before.map((d) => d.position)).toEqual([null, 1, 2, 3]);
    const worker = await pidOf('build-worker');
    const buildPid = gates.pid('a1') as number;
    process.kill(worker, 'SIGKILL');
    // The build's process tree dies with its worker (the executor's watchdog) ...
    await waitFor('the cut-off build to die', async () => !alive(buildPid), 30_000);
    // ... minipaasd starts a new worker, which retries the build (attempt 2).
    await waitFor(
      'a new build worker',
      async () => (await pidOf('build-worker').catch(() => worker)) !== worker,
      30_000,
    );
    // The retry waits out its backoff: the queued ones, ready meanwhile, go first.
    for (const l of labels.slice(1)) await gates.open(l);
    const retried = await waitFor(
      'the retry',
      async () => {
        const d = await get(ids[0] as string);
        return d.attempts === 2 && d.status === 'building' ? d : null;
      },
      60_000,
    ).catch(async (e: Error) => {
      const all = (await statuses(ids)).map((d) => [d.appName, d.status, d.attempts, d.log.slice(-3)]);
      throw new Error(`${e.message}: ${JSON.stringify(all)}\n${p.output().slice(-3000)}`);
    });
    expect(retried.log.join('\n')).toMatch(/interrupted/);
    await gates.open('a1');
    const done = await expectSettled(ids, apps);
    expect(done.map((d) => d.status)).toEqual(['running', 'running', 'running', 'running']);
  }, 300_000);

  it('kill -9 of minipaasd with builds queued and building: all end running, none twice', async () => {
    const apps = ['ra', 'rb', 'rc', 'rd'];
    const labels = ['a2', 'b2', 'c2', 'd2'];
    const ds: DeploymentView[] = [];
    for (const [i, app] of apps.entries()) ds.push(await deployGated(app, labels[i] as string));
    const ids = ds.map((d) => d.id);
    await waitFor('the first build to wait', async () => gates.started('a2'), 60_000);
    expect((await statuses(ids)).map((d) => d.status)).toEqual(['building', 'queued', 'queued', 'queued']);
    const server = await pidOf('minipaasd');
    const oldWorker = await pidOf('build-worker');
    process.kill(server, 'SIGKILL');
    // The supervisor restarts minipaasd; the API answers again and still shows the queue.
    await waitFor(
      'minipaasd to be back',
      async () =>
        (await pidOf('minipaasd').catch(() => server)) !== server &&
        (await fetch(`${p.apiUrl}/health/ready`)).ok,
      60_000,
      250,
    );
    const after = await statuses(ids);
    expect(after.map((d) => d.status)).toEqual(['building', 'queued', 'queued', 'queued']);
    expect(after.map((d) => d.position)).toEqual([null, 1, 2, 3]);
    for (const l of labels) await gates.open(l);
    const done = await expectSettled(ids, apps);
    expect(done.map((d) => d.status)).toEqual(['running', 'running', 'running', 'running']);
    // The orphaned worker finished its build and exited (it did not outlive its work).
    await waitFor(
      'the old worker to exit',
      async () => (await pidOf('build-worker')) !== 0 && !alive(oldWorker),
      60_000,
    );
    // The previous deployments were superseded by these ones.
    for (const app of apps) {
      const list = (await p.api<{ deployments: DeploymentView[] }>('GET', `/api/v1/apps/${app}/deployments`))
        .body.deployments;
      expect(list.filter((d) => d.status === 'running')).toHaveLength(1);
    }
  }, 300_000);

  it('kill -9 of minipaasd and the worker together: the cut-off build is retried, nothing is left behind', async () => {
    const apps = ['ra', 'rb', 'rc', 'rd'];
    const labels = ['a3', 'b3', 'c3', 'd3'];
    const ds: DeploymentView[] = [];
    for (const [i, app] of apps.entries()) ds.push(await deployGated(app, labels[i] as string));
    const ids = ds.map((d) => d.id);
    await waitFor('the first build to wait', async () => gates.started('a3'), 60_000);
    const server = await pidOf('minipaasd');
    const worker = await pidOf('build-worker');
    process.kill(worker, 'SIGKILL');
    process.kill(server, 'SIGKILL');
    await waitFor(
      'minipaasd and a new worker',
      async () =>
        (await pidOf('minipaasd').catch(() => server)) !== server &&
        (await pidOf('build-worker').catch(() => worker)) !== worker,
      60_000,
      250,
    );
    for (const l of labels) await gates.open(l);
    const done = await expectSettled(ids, apps);
    expect(done.map((d) => d.status)).toEqual(['running', 'running', 'running', 'running']);
    expect(done[0]?.attempts).toBe(2);
    // One build worker (the current one), none left over from before.
    expect(alive(worker)).toBe(false);
  }, 300_000);

  it('the CLI shows the queue: deploy prints "queued (position 1)", builds lists, builds:cancel refuses a finished one', async () => {
    const blocker = await deployGated('ra', 'a4');
    await waitFor('the blocking build', async () => gates.started('a4'), 60_000);
    const dir = join(p.home, 'cli-app');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'Procfile'), 'web: node server.js\n');
    await writeFile(
      join(dir, 'server.js'),
      "require('http').createServer((q,s)=>s.end('cli')).listen(process.env.PORT)\n",
    );
    const deploying = p.cli(['deploy', dir, '--app', 'rb']);
    const queued = await waitFor(
      'the CLI deploy to be queued',
      async () => {
        const { builds } = (await p.api<{ builds: DeploymentView[] }>('GET', '/api/v1/apps/rb/builds')).body;
        return builds.find((b) => b.status === 'queued') ?? null;
      },
      60_000,
    );
    const listed = await p.cli(['builds', 'rb', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = (JSON.parse(listed.stdout) as { builds: DeploymentView[] }).builds;
    expect(rows.find((b) => b.id === queued.id)).toMatchObject({ status: 'queued', position: 1 });
    const table = await p.cli(['builds', 'rb']);
    expect(table.stdout).toMatch(/queued \(position 1\)/);
    await gates.open('a4');
    const r = await deploying;
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/queued \(position 1\)/);
    expect(r.stdout).toMatch(/is live at/);
    expect((await get(blocker.id)).status).toBe('running');
    const refused = await p.cli(['builds:cancel', blocker.id]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/already finished/);
  }, 300_000);

  it('the build worker exits when idle and minipaasd starts one for the next deploy', async () => {
    const worker = await pidOf('build-worker');
    await waitFor('the idle worker to exit', async () => !alive(worker), 90_000, 500);
    await expect(pidOf('build-worker')).rejects.toThrow(/ENOENT/);
    const d = await p.api<DeploymentView>('POST', '/api/v1/apps/rc/deploy', {
      command: `node -e "require('http').createServer((q,s)=>s.end('c')).listen(process.env.PORT)"`,
    });
    expect(d.status).toBe(202);
    const done = await waitFor(
      'the deploy',
      async () => {
        const v = await get(d.body.id);
        return FINAL.includes(v.status) ? v : null;
      },
      60_000,
    );
    expect(done.status).toBe('running');
    expect(await pidOf('build-worker')).not.toBe(worker);
  }, 180_000);

  // Last: it stops the platform.
  it('minipaas down also stops a build worker that outlived its minipaasd', async () => {
    const d = await deployGated('ra', 'a5');
    await waitFor('the build to wait', async () => gates.started('a5'), 60_000);
    const server = await pidOf('minipaasd');
    const orphan = await pidOf('build-worker');
    process.kill(server, 'SIGKILL');
    await waitFor(
      'minipaasd to be back',
      async () =>
        (await pidOf('minipaasd').catch(() => server)) !== server &&
        (await fetch(`${p.apiUrl}/health/ready`)).ok,
      60_000,
      250,
    );
    // The old worker still holds the build (its gate is closed); the pid file names its successor.
    expect(alive(orphan)).toBe(true);
    const down = await p.cli(['down'], { timeoutMs: 120_000 });
    expect(down.code, down.stderr).toBe(0);
    expect(alive(orphan), `${down.stdout}\n${procState(orphan)}`).toBe(false);
    expect(alive(server)).toBe(false);
    expect(d.status).toBe('queued');
  }, 240_000);
});
