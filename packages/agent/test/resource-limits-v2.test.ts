/**
 * The cgroup v2 limiter on a directory laid out like the unified hierarchy (these machines mount cgroup
 * v1, so the kernel side of v2 cannot run here): which controllers it enables at each level, the limit
 * files it writes, and how it reads usage and OOM kills from the v2 files. Needs root (as the agent).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createResourceLimiter } from '../src/resource-limits.ts';

const root = process.getuid?.() === 0;
let mount = '';

/** A fake unified hierarchy: the root cgroup's interface files. */
function unified(controllers = 'cpuset cpu io memory hugetlb pids rdma misc'): string {
  mount = mkdtempSync(join(tmpdir(), 'mp-cgv2-'));
  writeFileSync(join(mount, 'cgroup.controllers'), `${controllers}\n`);
  writeFileSync(join(mount, 'cgroup.subtree_control'), '');
  return mount;
}

/** Real cgroupfs creates interface files with every mkdir; a plain directory needs them made. */
function seedInterfaceFiles(dir: string): void {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'cgroup.subtree_control')))
    writeFileSync(join(dir, 'cgroup.subtree_control'), '');
}

afterEach(() => {
  if (mount) rmSync(mount, { recursive: true, force: true });
  mount = '';
});

describe.runIf(root)('cgroup v2 resource limits (directory laid out as the unified hierarchy)', () => {
  it('enables memory and cpu down to the app, writes memory.max, memory.swap.max and cpu.max', () => {
    const m = unified();
    for (const d of ['minipaas', 'minipaas/abc']) seedInterfaceFiles(join(m, d));
    const limiter = createResourceLimiter({ root: 'minipaas/abc', mount: m });
    expect(limiter.mode).toBe('cgroup-v2');
    expect(limiter.description).toContain(join(m, 'minipaas/abc'));
    // Each level got +memory then +cpu (a real cgroupfs keeps the set; a plain file keeps the last write).
    expect(readFileSync(join(m, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu');
    expect(readFileSync(join(m, 'minipaas/abc/cgroup.subtree_control'), 'utf8')).toBe('+cpu');

    seedInterfaceFiles(join(m, 'minipaas/abc/web'));
    mkdirSync(join(m, 'minipaas/abc/web/web-1'), { recursive: true });
    writeFileSync(join(m, 'minipaas/abc/web/web-1/memory.swap.max'), 'max');
    writeFileSync(
      join(m, 'minipaas/abc/web/web-1/memory.events'),
      'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n',
    );
    const h = limiter.open('web', 'web-1', { memoryMb: 64, cpuMillicores: 250 });
    expect(h.enforcement).toEqual({ mode: 'cgroup-v2', memoryMb: 64, cpuMillicores: 250 });
    const dir = join(m, 'minipaas/abc/web/web-1');
    expect(readFileSync(join(dir, 'memory.max'), 'utf8')).toBe(String(64 * 1024 * 1024));
    expect(readFileSync(join(dir, 'memory.swap.max'), 'utf8')).toBe('0');
    expect(readFileSync(join(dir, 'cpu.max'), 'utf8')).toBe('25000 100000');
    expect(readFileSync(join(m, 'minipaas/abc/web/cgroup.subtree_control'), 'utf8')).toBe('+cpu');

    h.add(4242);
    expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8')).toBe('4242');
    // Usage from cpu.stat and memory.current less inactive_file; OOM kills counted from the baseline.
    expect(h.read(null)).toBeNull();
    writeFileSync(join(dir, 'cpu.stat'), 'usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n');
    writeFileSync(join(dir, 'memory.current'), `${50 * 1024 * 1024}\n`);
    writeFileSync(join(dir, 'memory.stat'), `anon 1\ninactive_file ${10 * 1024 * 1024}\nactive_file 0\n`);
    expect(h.read(null)).toEqual({ cpuNs: 1_500_000_000, memoryBytes: 40 * 1024 * 1024 });
    expect(h.oomKills()).toBe(0);
    writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n');
    expect(h.oomKills()).toBe(1);
  });

  it('reports unsupported, with the reason, when the hierarchy lacks a controller', () => {
    const limiter = createResourceLimiter({ root: 'minipaas/abc', mount: unified('cpuset io pids') });
    expect(limiter.mode).toBe('unsupported');
    expect(limiter.description).toMatch(/has no memory and cpu controller/);
    expect(limiter.open('web', 'web-1', { memoryMb: 64 }).enforcement).toMatchObject({
      mode: 'unsupported',
      memoryMb: 64,
      reason: expect.stringContaining('no memory and cpu controller'),
    });
  });

  it('reports unsupported when a level cannot hand the controllers down', () => {
    const m = unified();
    // minipaas exists without its interface file: enabling controllers there fails like an EACCES would.
    mkdirSync(join(m, 'minipaas'));
    const limiter = createResourceLimiter({ root: 'minipaas/abc', mount: m });
    expect(limiter.mode).toBe('unsupported');
    expect(limiter.description).toMatch(/cannot enable the memory and cpu controllers/);
  });
});
