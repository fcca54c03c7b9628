import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppSpec } from '@minipaas/core';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { createCgroups, killCgroupTree, probeCgroups } from '../src/cgroup.ts';
import { alive, makeHome, makeRelease, removeHome, startTestAgent, waitFor } from './helpers.ts';

const isRoot = process.getuid?.() === 0;
const found = probeCgroups();
/** Parent of every cgroup root these tests create (each suite adds its own random directory). */
const TEST_ROOT = 'minipaas-test';

/** Every escaped pid a test saw, killed in afterAll whatever happened. */
const escaped = new Set<number>();

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Pids the app wrote, one per line (created by the app's shell, so it may not exist yet). */
function readPids(file: string): number[] {
  if (!existsSync(file)) return [];
  const pids = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  for (const p of pids) escaped.add(p);
  return pids;
}

/** A directory apps (running as `nobody` under a root agent) can write their pid files to. */
function makeDropDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mp-cg-'));
  chmodSync(dir, 0o1777);
  return dir;
}

function removeTestRootIfEmpty(): void {
  for (const mount of [found.v2, found.v1, found.freezer]) {
    if (!mount) continue;
    try {
      rmdirSync(join(mount, TEST_ROOT));
    } catch {
      // absent, or another test file's suite still uses it
    }
  }
}

afterAll(() => {
  for (const p of escaped) killQuietly(p);
});

const modes = [
  { version: 'v2' as const, usable: isRoot && found.v2 !== null },
  { version: 'v1' as const, usable: isRoot && found.v1 !== null },
  { version: 'none' as const, usable: true },
];

for (const { version, usable } of modes) {
  describe.skipIf(!usable)(`escaped children die with their instance (cgroup ${version})`, () => {
    let home: string;
    let drop: string;
    let agent: AgentHandle;
    const root = `${TEST_ROOT}/${randomBytes(6).toString('hex')}`;
    const warnings: string[] = [];

    beforeAll(async () => {
      home = makeHome();
      drop = makeDropDir();
      agent = await startTestAgent(home, {
        restore: false,
        cgroups: createCgroups({ root, version, killTimeoutMs: 1000 }),
        logger: pino({ level: 'warn' }, { write: (s: string) => warnings.push(s) }),
      });
    });

    afterAll(async () => {
      await agent?.close();
      for (const p of escaped) killQuietly(p);
      if (version !== 'none') await killCgroupTree(root);
      removeTestRootIfEmpty();
      removeHome(home);
      rmSync(drop, { recursive: true, force: true });
    });

    const spec = (name: string, command: string, instances = 1): AppSpec => ({
      name,
      release: 'v1',
      dir: makeRelease(home, name, 'v1'),
      env: {},
      processes: { worker: { command, instances } },
    });

    /** A worker that starts a `setsid` child (its own session and group) and writes its pid to `file`. */
    const escaping = (file: string, then = 'exec sleep 1000') =>
      `setsid sleep 1000 & echo $! >> ${file}; ${then}`;

    const running = async (name: string) => {
      const state = await waitFor(
        () => {
          const s = agent.supervisor.get(name);
          return s?.instances[0]?.status === 'running' ? s : null;
        },
        20_000,
        `${name} running`,
      );
      return state.instances[0] as NonNullable<(typeof state.instances)[0]>;
    };

    const escapedPid = async (file: string) => {
      const [pid] = await waitFor(() => (readPids(file).length ? readPids(file) : null), 10_000, 'pid file');
      expect(alive(pid as number)).toBe(true);
      return pid as number;
    };

    it('puts the process in its cgroup before the command runs, stdin /dev/null and no fd 3', async () => {
      const out = join(drop, 'gate.txt');
      // `sh -c` so the whole script runs in the instance's own process ($$ is the instance pid).
      const cmd = `sh -c 'cat /proc/$$/cgroup; readlink /proc/$$/fd/0; if [ -e /proc/$$/fd/3 ]; then echo fd3-open; else echo fd3-closed; fi; exec sleep 1000' > ${out}`;
      agent.supervisor.apply(spec('gate', cmd));
      const inst = await running('gate');
      const seen = readFileSync(out, 'utf8');
      expect(seen).toContain('/dev/null');
      expect(seen).toContain('fd3-closed');
      if (version === 'none') {
        expect(inst.cgroup).toBeNull();
      } else {
        expect(inst.cgroup).toBe(
          join(version === 'v2' ? (found.v2 as string) : (found.v1 as string), root, 'gate', inst.id),
        );
        // The shell was in the instance's cgroup when it ran its first line.
        expect(seen).toContain(`/${root}/gate/${inst.id}`);
      }
      await agent.supervisor.remove('gate');
    });

    it('(a) stopping the instance kills the escaped child', async () => {
      const file = join(drop, 'stop.pids');
      agent.supervisor.apply(spec('stopme', escaping(file)));
      const inst = await running('stopme');
      const pid = await escapedPid(file);
      if (inst.cgroup) expect(readFileSync(join(inst.cgroup, 'cgroup.procs'), 'utf8')).toContain(`${pid}\n`);
      agent.supervisor.apply(spec('stopme', escaping(file), 0));
      await waitFor(() => agent.supervisor.get('stopme')?.instances.length === 0, 20_000, 'scaled to 0');
      expect(alive(pid)).toBe(false);
      if (inst.cgroup) expect(existsSync(inst.cgroup)).toBe(false);
      await agent.supervisor.remove('stopme');
    });

    it('(b) a crash loop kills the escaped child of every crash', async () => {
      const file = join(drop, 'crash.pids');
      agent.supervisor.apply(spec('crashy', escaping(file, 'exit 3')));
      await waitFor(
        () => agent.supervisor.get('crashy')?.instances.some((i) => i.status === 'failed'),
        30_000,
        'crash loop detected',
      );
      const pids = readPids(file);
      expect(pids.length).toBeGreaterThanOrEqual(4);
      await waitFor(() => pids.every((p) => !alive(p)), 10_000, `escaped children ${pids.join(', ')} dead`);
      await agent.supervisor.remove('crashy');
      for (const p of pids) expect(alive(p)).toBe(false);
    });

    it('(c) removing the app kills the escaped child and removes its cgroups', async () => {
      const file = join(drop, 'remove.pids');
      agent.supervisor.apply(spec('goner', escaping(file), 2));
      const inst = await running('goner');
      await waitFor(() => readPids(file).length === 2, 10_000, 'two pid files');
      const pids = readPids(file);
      await agent.supervisor.remove('goner');
      for (const p of pids) expect(alive(p)).toBe(false);
      if (inst.cgroup) expect(existsSync(join(inst.cgroup, '..'))).toBe(false);
    });
  });
}

describe.skipIf(!isRoot || !found.v1 || !found.v2)('killCgroupTree', () => {
  const root = `${TEST_ROOT}/${randomBytes(6).toString('hex')}`;
  afterEach(async () => {
    await killCgroupTree(root);
    removeTestRootIfEmpty();
  });

  it('kills every process of every cgroup below a root, in v1 and v2 hierarchies, and removes them', async () => {
    const cg1 = createCgroups({ root, version: 'v1' });
    const cg2 = createCgroups({ root, version: 'v2' });
    const pids: number[] = [];
    for (const [cg, app] of [
      [cg1, 'one'],
      [cg2, 'two'],
    ] as const) {
      const scope = cg.open(app, `${app}-web-1`);
      // Held at `read` until it is in the cgroup, then it starts an escaping child.
      const child = spawn('/bin/sh', ['-c', 'read _; setsid sleep 1000 & echo $!; exec sleep 1000'], {
        stdio: ['pipe', 'pipe', 'ignore'],
        detached: true,
      });
      child.unref();
      scope.add(child.pid as number);
      child.stdin?.end('go\n');
      const line = await new Promise<string>((r) => child.stdout?.once('data', (d: Buffer) => r(String(d))));
      pids.push(child.pid as number, Number(line.trim()));
      for (const p of pids) escaped.add(p);
    }
    for (const p of pids) expect(alive(p)).toBe(true);
    const killed = await killCgroupTree(root);
    for (const p of pids) expect(killed).toContain(p);
    for (const p of killed) expect(alive(p)).toBe(false);
    expect(existsSync(join(found.v1 as string, root))).toBe(false);
    expect(existsSync(join(found.v2 as string, root))).toBe(false);
  });
});

describe.skipIf(!isRoot || !found.freezer)('without cgroups: what cannot be reaped is reported', () => {
  let home: string;
  let drop: string;
  let agent: AgentHandle;
  const frozen = join(found.freezer ?? '/nonexistent', TEST_ROOT, `frozen-${randomBytes(6).toString('hex')}`);
  const warnings: string[] = [];

  beforeAll(async () => {
    home = makeHome();
    drop = makeDropDir();
    agent = await startTestAgent(home, {
      restore: false,
      cgroups: createCgroups({ root: 'minipaas', version: 'none', killTimeoutMs: 300 }),
      logger: pino({ level: 'warn' }, { write: (s: string) => warnings.push(s) }),
    });
  });

  afterAll(async () => {
    if (existsSync(frozen)) {
      writeFileSync(join(frozen, 'freezer.state'), 'THAWED');
      for (const p of escaped) killQuietly(p);
      await waitFor(() => readFileSync(join(frozen, 'cgroup.procs'), 'utf8').trim() === '', 10_000, 'thawed');
      rmdirSync(frozen);
    }
    await agent?.close();
    removeTestRootIfEmpty();
    removeHome(home);
    rmSync(drop, { recursive: true, force: true });
  });

  it('names the pid that survived the kill in the instance log and the agent log', async () => {
    const file = join(drop, 'stuck.pids');
    agent.supervisor.apply({
      name: 'stuck',
      release: 'v1',
      dir: makeRelease(home, 'stuck', 'v1'),
      env: {},
      processes: {
        worker: { command: `setsid sleep 1000 & echo $! >> ${file}; exec sleep 1000`, instances: 1 },
      },
    });
    await waitFor(() => agent.supervisor.get('stuck')?.instances[0]?.status === 'running', 20_000, 'running');
    const [pid] = await waitFor(() => (readPids(file).length ? readPids(file) : null), 10_000, 'pid file');
    // A frozen process cannot die until thawed: the nearest thing to a process stuck in the kernel.
    mkdirSync(frozen, { recursive: true });
    writeFileSync(join(frozen, 'cgroup.procs'), String(pid));
    writeFileSync(join(frozen, 'freezer.state'), 'FROZEN');
    await agent.supervisor.remove('stuck');
    expect(alive(pid as number)).toBe(true);
    agent.logs.flush('stuck');
    const lines = await agent.logs.tail('stuck', { tail: 50 });
    const report = lines.find((l) => l.stream === 'system' && l.line.startsWith('could not kill'));
    expect(report?.line).toContain(`pid ${pid}`);
    const warn = warnings.map((w) => JSON.parse(w) as { msg: string; alive?: number[] }).find((w) => w.alive);
    expect(warn?.alive).toEqual([pid]);
  });
});
