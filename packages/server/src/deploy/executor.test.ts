/**
 * The executor on real processes: output and exit codes, and that a program's whole process group dies
 * on timeout, on abort and when the process that ran it (minipaasd) is killed with SIGKILL.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runProgram } from './executor.ts';

let dir: string;
/** Every pid a test saw, killed in afterEach whatever happened. */
const seen = new Set<number>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mp-exec-'));
});

afterEach(() => {
  for (const pid of seen) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone, which is what the tests expect
    }
  }
  seen.clear();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** True when the process is gone or a zombie (nothing reaps orphans when pid 1 does not). */
async function gone(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function waitUntil(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A build-like program: a parent that starts a long-running helper (as npm starts node-gyp), writes
 * both pids to `file` and then waits forever.
 */
function buildLike(file: string): string[] {
  return [
    '-e',
    `const { spawn } = require('node:child_process');
     const helper = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
     require('node:fs').writeFileSync(${JSON.stringify(file)}, process.pid + ' ' + helper.pid);
     setInterval(() => {}, 1000);`,
  ];
}

async function pidsFrom(file: string): Promise<number[]> {
  let pids: number[] = [];
  await waitUntil('the program to start', async () => {
    const text = await readFile(file, 'utf8').catch(() => '');
    pids = text.split(' ').map(Number).filter(Boolean);
    return pids.length === 2;
  });
  for (const p of pids) seen.add(p);
  return pids;
}

describe('runProgram', () => {
  it('captures output lines and the exit code', async () => {
    const lines: string[] = [];
    const res = await runProgram(
      process.execPath,
      ['-e', 'console.log("out"); console.error("err"); process.exit(3)'],
      { cwd: dir, onLine: (l) => lines.push(l) },
    );
    expect(res).toEqual({ code: 3, signal: null, timedOut: false });
    expect(lines.sort()).toEqual(['err', 'out']);
  });

  it('kills the whole process group on timeout', async () => {
    const file = join(dir, 'timeout.pids');
    const run = runProgram(process.execPath, buildLike(file), { cwd: dir, timeoutMs: 3000 });
    const pids = await pidsFrom(file);
    const res = await run;
    expect(res.timedOut).toBe(true);
    await waitUntil('the program and its helper to die', async () =>
      (await Promise.all(pids.map(gone))).every(Boolean),
    );
  });

  it('kills the whole process group on abort and rejects with an AbortError', async () => {
    const file = join(dir, 'abort.pids');
    const ac = new AbortController();
    const run = runProgram(process.execPath, buildLike(file), { cwd: dir, signal: ac.signal });
    const pids = await pidsFrom(file);
    ac.abort();
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    await waitUntil('the program and its helper to die', async () =>
      (await Promise.all(pids.map(gone))).every(Boolean),
    );
  });

  it('kills helpers the program left behind when it exits', async () => {
    const file = join(dir, 'leftover.pids');
    const res = await runProgram(
      process.execPath,
      [
        '-e',
        `const { spawn } = require('node:child_process');
         const h = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'inherit' });
         require('node:fs').writeFileSync(${JSON.stringify(file)}, process.pid + ' ' + h.pid);
         process.exit(0);`,
      ],
      { cwd: dir },
    );
    expect(res.code).toBe(0);
    const pids = await pidsFrom(file);
    await waitUntil('the helper to die', async () => (await Promise.all(pids.map(gone))).every(Boolean));
  });

  it('kills the program when the process that runs it (minipaasd) is killed with SIGKILL', async () => {
    const file = join(dir, 'orphan.pids');
    const executor = join(import.meta.dirname, 'executor.ts');
    const host = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { runProgram } from ${JSON.stringify(executor)};
         await runProgram(process.execPath, ${JSON.stringify(buildLike(file))}, { cwd: ${JSON.stringify(dir)} });`,
      ],
      { stdio: 'ignore' },
    );
    if (host.pid) seen.add(host.pid);
    const exited = new Promise((r) => host.once('exit', r));
    const pids = await pidsFrom(file);
    expect((await Promise.all(pids.map(gone))).some(Boolean)).toBe(false);
    host.kill('SIGKILL');
    await exited;
    await waitUntil('the orphaned program and its helper to die', async () =>
      (await Promise.all(pids.map(gone))).every(Boolean),
    );
  });
});
