/**
 * Memory and CPU limits of process instances in cgroup v1, for real (root agent): the limits land in the
 * instance's memory and cpu cgroups, an instance limited to 64 MiB that allocates 200 MiB is killed by the
 * kernel's OOM killer and shows `oom-killed` (status, error, log), the restart policy decides what follows,
 * and usage samples come from the cgroups. Without root the limits are reported `unsupported`.
 * In CI (root, cgroup v1) a missing hierarchy fails the test instead of skipping it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AppSpec, InstanceInfo } from '@minipaas/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { createResourceLimiter, type ResourceLimiter } from '../src/resource-limits.ts';
import { makeHome, makeRelease, NODE, removeHome, startTestAgent, waitFor } from './helpers.ts';

const MOUNT = '/sys/fs/cgroup';
const usable =
  process.getuid?.() === 0 &&
  existsSync(join(MOUNT, 'memory', 'memory.limit_in_bytes')) &&
  existsSync(join(MOUNT, 'cpu', 'cpu.cfs_quota_us'));
if (process.env.CI && !usable)
  throw new Error('CI needs a root agent with cgroup v1 memory and cpu hierarchies');

/** Allocates (and touches) 200 MiB in 10 MiB steps after `delayMs`, then idles. */
const HOG = (delayMs: number) =>
  `${NODE} -e "setTimeout(() => { const a = []; for (let i = 0; i < 20; i++) a.push(Buffer.alloc(10 * 1024 * 1024, 1)); console.log('allocated', a.length * 10, 'MiB'); }, ${delayMs}); setInterval(() => {}, 1000)"`;

describe.skipIf(!usable)('resource limits in cgroup v1', () => {
  let home: string;
  let agent: AgentHandle;
  let limiter: ResourceLimiter;
  const root = `minipaas-test/${randomBytes(6).toString('hex')}`;

  beforeAll(async () => {
    home = makeHome();
    limiter = createResourceLimiter({ root });
    expect(limiter.mode).toBe('cgroup-v1');
    agent = await startTestAgent(home, { restore: false, limiter });
  });

  afterAll(async () => {
    await agent?.close();
    limiter?.sweep();
    removeHome(home);
  });

  const spec = (name: string, command: string, over: Partial<AppSpec> = {}): AppSpec => ({
    name,
    release: 'v1',
    dir: makeRelease(home, name, 'v1'),
    env: {},
    processes: { worker: { command, instances: 1 } },
    ...over,
  });

  const instance = (name: string): InstanceInfo | undefined => agent.supervisor.get(name)?.instances[0];

  it('puts the limits in the instance cgroups and samples usage from them', async () => {
    agent.supervisor.apply(
      spec('calm', `${NODE} -e "setInterval(() => { for (let i = 0; i < 1e6; i++); }, 50)"`, {
        resources: { memoryMb: 128, cpuMillicores: 250 },
      }),
    );
    const inst = await waitFor(
      () => (instance('calm')?.status === 'running' ? instance('calm') : null),
      20_000,
      'calm running',
    );
    const rel = join(root, 'calm', inst?.id as string);
    expect(readFileSync(join(MOUNT, 'memory', rel, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(
      String(128 * 1024 * 1024),
    );
    expect(readFileSync(join(MOUNT, 'cpu', rel, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('25000');
    expect(readFileSync(join(MOUNT, 'memory', rel, 'cgroup.procs'), 'utf8')).toContain(String(inst?.pid));
    expect(inst?.limits).toEqual({ mode: 'cgroup-v1', memoryMb: 128, cpuMillicores: 250 });
    agent.supervisor.sampleAll();
    await new Promise((r) => setTimeout(r, 300));
    agent.supervisor.sampleAll();
    const m = agent.supervisor.metrics('calm');
    const samples = m.instances[0]?.samples ?? [];
    expect(samples.length).toBe(2);
    expect(samples[1]?.memoryBytes).toBeGreaterThan(1024 * 1024);
    expect(samples[1]?.cpuMillicores).toBeGreaterThanOrEqual(0);
    expect(samples[1]?.cpuMillicores).toBeLessThanOrEqual(1000);
    expect(instance('calm')?.usage).toEqual(samples[1]);
    await agent.supervisor.remove('calm');
    expect(existsSync(join(MOUNT, 'memory', rel))).toBe(false);
  });

  it('an instance limited to 64 MiB that allocates 200 MiB is OOM-killed and shows it', async () => {
    agent.supervisor.apply(spec('hog', HOG(1500), { resources: { memoryMb: 64 }, restart: 'no' }));
    const inst = await waitFor(
      () => (instance('hog')?.status === 'oom-killed' ? instance('hog') : null),
      30_000,
      'hog oom-killed',
    );
    expect(inst?.oomKills).toBe(1);
    expect(inst?.error).toMatch(/killed by the OOM killer at its 64 MiB memory limit/);
    // SIGKILL, seen directly or through the shell that ran the command (128 + 9).
    expect(inst?.lastExitSignal === 'SIGKILL' || inst?.lastExitCode === 137).toBe(true);
    let log: string[] = [];
    for (let i = 0; i < 100 && !log.some((l) => l.includes('not restarted')); i++) {
      await new Promise((r) => setTimeout(r, 100));
      log = (await agent.logs.tail('hog', { tail: 50 })).map((l) => l.line);
    }
    expect(log.join('\n')).toMatch(/OOM killer.*not restarted \(restart policy no\)/);
    expect(log.join('\n')).not.toContain('allocated 200 MiB');
    await agent.supervisor.remove('hog');
  });

  it('restart policy always: the OOM-killed instance comes back and counts its OOM kills', async () => {
    agent.supervisor.apply(spec('hog2', HOG(300), { resources: { memoryMb: 64 } }));
    const inst = await waitFor(
      () => ((instance('hog2')?.oomKills ?? 0) >= 2 ? instance('hog2') : null),
      30_000,
      'two OOM kills',
    );
    expect(inst?.restarts).toBeGreaterThanOrEqual(1);
    await agent.supervisor.remove('hog2');
  });
});

describe('resource limits without root or cgroups', () => {
  it('are reported unsupported with the reason, never silently ignored', () => {
    const l = createResourceLimiter({ root: 'minipaas-test/none', mode: 'none' });
    const h = l.open('app', 'app-web-1', { memoryMb: 64, cpuMillicores: 500 });
    expect(h.enforcement).toEqual({
      mode: 'unsupported',
      memoryMb: 64,
      cpuMillicores: 500,
      reason: 'disabled',
    });
    expect(h.read(process.pid)?.memoryBytes).toBeGreaterThan(0);
  });
});
