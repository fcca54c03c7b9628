import { statSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '@minipaas/runtime-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { alive, httpGet, makeHome, NODE, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

interface Who {
  pid: number;
  port: number;
  uid: number;
  instance: string;
  release: string;
  greeting: string | null;
  home: string;
  agentLeak: string | null;
  path: string;
  headers: Record<string, string>;
}

describe('agent: supervisor and socket API', () => {
  let home: string;
  let agent: AgentHandle;
  let client: AgentClient;
  let routerPort: number;

  beforeAll(async () => {
    home = makeHome();
    process.env.MINIPAAS_TEST_AGENT_ONLY = 'must-not-leak';
    agent = await startTestAgent(home);
    client = new AgentClient({ home });
    routerPort = agent.router?.port as number;
  });

  afterAll(async () => {
    await client?.close();
    await agent?.close();
    removeHome(home);
  });

  const running = (name: string, n = 1) =>
    waitFor(
      async () => {
        const s = await client.getApp(name);
        const web = s?.instances.filter((i) => i.status === 'running') ?? [];
        return s && s.rollout.status === 'ready' && web.length === n ? s : null;
      },
      20_000,
      `${name} running`,
    );

  it('reports health', async () => {
    const h = await client.health();
    expect(h.ok).toBe(true);
    expect(h.pid).toBe(process.pid);
    expect(h.router.port).toBe(routerPort);
  });

  it('spawns a web app with PORT, routes it by host and by path', async () => {
    const spec = webSpec(home, 'hello', 'v1');
    const put = await client.putApp(spec);
    expect(put.name).toBe('hello');
    expect(put.rollout.status).toBe('rolling');
    const state = await running('hello');
    const inst = state.instances[0];
    expect(inst?.pid).toBeGreaterThan(0);
    expect(inst?.port).toBeGreaterThanOrEqual(20000);
    expect(state.release).toBe('v1');

    const byHost = await httpGet(routerPort, '/some/path?x=1', 'hello.localhost:1234');
    expect(byHost.status).toBe(200);
    const who = JSON.parse(byHost.body) as Who;
    expect(who.port).toBe(inst?.port);
    expect(who.pid).toBe(inst?.pid);
    expect(who.path).toBe('/some/path?x=1');
    expect(who.greeting).toBe('hello from v1');
    expect(who.instance).toBe(inst?.id);
    expect(who.home).toBe(join(home, 'apps', 'hello', 'data')); // writable, unlike the release
    expect(who.agentLeak).toBeNull();
    expect(who.headers['x-forwarded-host']).toBe('hello.localhost:1234');
    expect(who.headers['x-forwarded-proto']).toBe('http');
    expect(who.headers['x-forwarded-for']).toBe('127.0.0.1');

    const byPath = await httpGet(routerPort, '/apps/hello/a/b?y=2', '127.0.0.1');
    expect(byPath.status).toBe(200);
    const who2 = JSON.parse(byPath.body) as Who;
    expect(who2.path).toBe('/a/b?y=2');
    expect(who2.headers['x-forwarded-prefix']).toBe('/apps/hello');

    const redirect = await httpGet(routerPort, '/apps/hello?q=1');
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe('/apps/hello/?q=1');
  });

  it('runs apps without an identity of their own as nobody when the agent is root', async () => {
    if (process.getuid?.() !== 0) return;
    expect(agent.runAs?.user).toBe('nobody');
    const who = JSON.parse((await httpGet(routerPort, '/', 'hello.localhost')).body) as Who;
    expect(who.uid).toBe(agent.runAs?.uid);
    expect(who.uid).not.toBe(0);
  });

  it.runIf(process.getuid?.() === 0)(
    'runs an app with its own user as that uid, HOME in its data dir, release locked read-only',
    async () => {
      const id = 3_500_000 + Math.floor(Math.random() * 100_000);
      const spec = webSpec(home, 'own', 'v1', { user: { name: `mp${id}`, uid: id, gid: id } });
      await client.putApp(spec);
      await running('own');
      const who = JSON.parse((await httpGet(routerPort, '/', 'own.localhost')).body) as Who;
      expect(who.uid).toBe(id);
      expect(who.home).toBe(join(home, 'apps', 'own', 'data'));
      const data = statSync(who.home);
      expect([data.uid, data.gid, data.mode & 0o7777]).toEqual([id, id, 0o700]);
      const rel = statSync(spec.dir);
      expect([rel.uid, rel.gid, rel.mode & 0o7777]).toEqual([0, id, 0o750]);
      expect(statSync(join(spec.dir, 'web.js')).mode & 0o7777).toBe(0o640);
      await client.deleteApp('own');
    },
  );

  it('refuses a spec whose user is root or a system id', async () => {
    for (const user of [
      { name: 'root', uid: 0, gid: 0 },
      { name: 'mpx', uid: 70_000, gid: 0 },
      { name: 'daemon', uid: 1, gid: 1 },
      { name: 'Bad Name', uid: 70_000, gid: 70_000 },
    ]) {
      await expect(
        client.putApp({ name: 'evil', release: 'v1', dir: '/tmp', env: {}, processes: {}, user }),
      ).rejects.toMatchObject({ code: 'MINIPAAS_ERR_VALIDATION' });
    }
    expect(await client.getApp('evil').catch(() => null)).toBeNull();
  });

  it('restarts an instance killed with SIGKILL immediately, counting the restart', async () => {
    const before = (await client.getApp('hello'))?.instances[0];
    process.kill(before?.pid as number, 'SIGKILL');
    const after = await waitFor(async () => {
      const i = (await client.getApp('hello'))?.instances[0];
      return i && i.status === 'running' && i.pid !== before?.pid ? i : null;
    });
    expect(after.restarts).toBe(1);
    expect(after.lastExitSignal).toBe('SIGKILL');
    expect(after.port).toBe(before?.port);
    expect(after.id).toBe(before?.id);
    expect((await httpGet(routerPort, '/', 'hello.localhost')).status).toBe(200);
  });

  it('an identical PUT is a no-op (same pids, no duplicates)', async () => {
    const s1 = await client.getApp('hello');
    // Re-push the exact spec the agent runs (a control plane re-sync after its restart).
    const same = webSpec(home, 'hello', 'v1');
    const s2 = await client.putApp(same);
    expect(s2.instances.map((i) => i.pid)).toEqual(s1?.instances.map((i) => i.pid));
    expect(s2.rollout.status).toBe('ready');
    await new Promise((r) => setTimeout(r, 300));
    const s3 = await client.getApp('hello');
    expect(s3?.instances).toHaveLength(1);
    expect(s3?.instances[0]?.pid).toBe(s1?.instances[0]?.pid);
  });

  it('an app that exits on start ends failed with its log tail; the agent keeps working', async () => {
    const spec = webSpec(home, 'broken', 'v1', {
      processes: { web: { command: `${NODE} crash.js`, instances: 1 } },
    });
    await client.putApp(spec);
    const state = await waitFor(async () => {
      const s = await client.getApp('broken');
      return s?.rollout.status === 'failed' ? s : null;
    });
    expect(state.rollout.error).toMatch(/exited with code 1 \d+ times/);
    expect(state.rollout.logTail?.join('\n')).toContain('fatal: DATABASE_URL is not set');
    expect(state.instances).toHaveLength(1);
    expect(state.instances[0]?.status).toBe('failed');
    expect(state.instances[0]?.lastExitCode).toBe(1);
    expect(state.instances[0]?.error).toMatch(/crash loop/);
    expect(state.release).toBeNull();
    const page = await httpGet(routerPort, '/', 'broken.localhost');
    expect(page.status).toBe(503);
    expect(page.body).toContain('no healthy instance');
    expect((await httpGet(routerPort, '/', 'hello.localhost')).status).toBe(200);
  });

  it('scales to 3 on distinct ports with round-robin, and back to 1 stopping 2 cleanly', async () => {
    const spec = webSpec(home, 'hello', 'v1');
    const base = await client.getApp('hello');
    const firstPid = base?.instances[0]?.pid;
    await client.putApp({
      ...spec,
      processes: { web: { command: spec.processes.web!.command, instances: 3 } },
    });
    const s = await running('hello', 3);
    const ports = s.instances.map((i) => i.port);
    expect(new Set(ports).size).toBe(3);
    expect(s.instances.map((i) => i.pid)).toContain(firstPid);
    const seen = new Map<number, number>();
    for (let i = 0; i < 9; i++) {
      const who = JSON.parse((await httpGet(routerPort, '/', 'hello.localhost')).body) as Who;
      seen.set(who.port, (seen.get(who.port) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual([...ports].sort());
    expect([...seen.values()]).toEqual([3, 3, 3]);

    const pids = s.instances.map((i) => i.pid as number);
    await client.putApp({
      ...spec,
      processes: { web: { command: spec.processes.web!.command, instances: 1 } },
    });
    const one = await waitFor(async () => {
      const st = await client.getApp('hello');
      return st?.instances.length === 1 ? st : null;
    });
    // the oldest instance stays, the two newest are stopped
    expect(one.instances[0]?.pid).toBe(firstPid);
    const stopped = pids.filter((p) => p !== firstPid);
    await waitFor(() => stopped.every((p) => !alive(p)), 10_000, 'scaled-down processes gone');
    const lines = await client.logs('hello', { tail: 200 });
    expect(lines.filter((l) => /SIGTERM: closing/.test(l.line))).toHaveLength(2);
  });

  it('maps errors to MinipaasError codes', async () => {
    expect(await client.getApp('nope')).toBeNull();
    await expect(client.restartApp('nope')).rejects.toMatchObject({ code: 'MINIPAAS_ERR_APP_NOT_FOUND' });
    await expect(
      client.putApp({ name: 'Bad_Name', release: 'v1', dir: '/tmp', env: {}, processes: {} }),
    ).rejects.toMatchObject({ code: 'MINIPAAS_ERR_VALIDATION' });
    await expect(
      client.putApp({ name: 'rel', release: 'v1', dir: 'relative', env: {}, processes: {} }),
    ).rejects.toMatchObject({ code: 'MINIPAAS_ERR_VALIDATION', message: expect.stringMatching(/absolute/) });
    const dead = new AgentClient({ socketPath: `${home}/run/nope.sock` });
    await expect(dead.health()).rejects.toMatchObject({ code: 'MINIPAAS_ERR_AGENT_UNAVAILABLE' });
    await dead.close();
  });

  it('a missing release directory fails the rollout with a clear error', async () => {
    await client.putApp({
      name: 'ghost',
      release: 'v1',
      dir: `${home}/releases/ghost/v1`,
      env: {},
      processes: { web: { command: 'true', instances: 1 } },
    });
    const s = await waitFor(async () => {
      const st = await client.getApp('ghost');
      return st?.rollout.status === 'failed' ? st : null;
    });
    expect(s.rollout.error).toMatch(/does not exist/);
    expect((await client.deleteApp('ghost')).stopped).toBe(0);
  });

  it('refuses to start a second agent on the same socket', async () => {
    await expect(startTestAgent(home)).rejects.toMatchObject({ code: 'MINIPAAS_ERR_CONFLICT' });
    expect((await client.health()).ok).toBe(true);
  });

  it('SIGKILLs an instance that ignores SIGTERM after the grace period', async () => {
    await client.putApp(webSpec(home, 'stubborn', 'v1', { env: { IGNORE_SIGTERM: '1' } }));
    const s = await running('stubborn');
    const pid = s.instances[0]?.pid as number;
    expect(await client.deleteApp('stubborn')).toEqual({ stopped: 1 });
    expect(alive(pid)).toBe(false);
    const lines = (await client.logs('stubborn', { tail: 50 })).map((l) => l.line);
    expect(lines).toContain('ignoring SIGTERM');
    expect(lines.some((l) => /did not stop within 3000ms; SIGKILL/.test(l))).toBe(true);
  });

  it('DELETE stops every instance', async () => {
    const pids = (await client.getApp('hello'))?.instances.map((i) => i.pid as number) ?? [];
    expect(pids.length).toBeGreaterThan(0);
    expect(await client.deleteApp('hello')).toEqual({ stopped: 1 });
    expect(pids.every((p) => !alive(p))).toBe(true);
    expect(await client.getApp('hello')).toBeNull();
    expect((await httpGet(routerPort, '/', 'hello.localhost')).status).toBe(404);
  });
});
