/**
 * The Python stack for real, without PyPI: the test builds a tiny wheel (`hello-server`, a stand-in for
 * gunicorn with a `hello-serve` console script) into a local directory, then runs the detected build steps
 * exactly as the builder does (program + args, in the build dir, with buildEnv + the step's env, as an
 * unprivileged user when the test runs as root), moves the build dir to its release dir (read-only for
 * the app), and runs the web command the way the agent does (`/bin/sh -c "exec ..."`, cwd = release dir,
 * env = release env + PORT) until it answers 200.
 *
 * The index is local through PIP_NO_INDEX / PIP_FIND_LINKS, set once for the whole platform; the sample
 * apps themselves are unchanged Heroku-style apps.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, chown, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runProgram } from '../src/deploy/executor.ts';
import { buildEnv } from '../src/deploy/process-builder.ts';
import { type DetectedStack, detectStack, PYTHON_VENV } from '../src/deploy/stack-detector.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const AS_ROOT = process.getuid?.() === 0;
/** Builds and apps run as nobody:nogroup when the test is root (the builder's app-user switch). */
const APP = AS_ROOT ? { uid: 65534, gid: 65534 } : null;
/** A root platform's PATH: the host's own python3 (an interpreter under /root is not the app user's). */
const PATH = AS_ROOT ? '/usr/local/bin:/usr/bin:/bin' : (process.env.PATH ?? '');

/** Python 3 with venv on PATH (.ci/setup.d/40-python.sh installs it; in CI a missing one fails). */
const HAS_PYTHON =
  process.env.CI === 'true' ||
  (() => {
    try {
      execFileSync('python3', ['-c', 'import ensurepip, venv'], { env: { PATH }, stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

const roots: string[] = [];
const children: number[] = [];
afterAll(async () => {
  for (const pid of children) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {}
  }
  for (const d of roots) await rm(d, { recursive: true, force: true });
});

async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await chown(dir, uid, gid);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, uid, gid);
    else if (!e.isSymbolicLink()) await chown(p, uid, gid);
  }
}

/** Like the builder's lockTree: root:appgid, nothing writable by the app, nothing for others. */
async function lockTree(dir: string, gid: number): Promise<void> {
  await chownTree(dir, 0, gid);
  const walk = async (d: string): Promise<void> => {
    await chmod(d, 0o750);
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) await chmod(p, (await stat(p)).mode & 0o111 ? 0o750 : 0o640);
    }
  };
  await walk(dir);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function run(program: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }) {
  const lines: string[] = [];
  const res = await runProgram(program, args, {
    ...opts,
    timeoutMs: 120_000,
    onLine: (l) => lines.push(l),
    ...(APP ?? {}),
  });
  return { ...res, out: lines.join('\n') };
}

/** A platform home with the local "index": the hello-server wheel built from its fixture, offline. */
async function platform(opts: { longHome?: boolean } = {}) {
  const root = await mkdtemp(join(tmpdir(), 'mp-python-'));
  roots.push(root);
  await chmod(root, 0o711);
  const home = opts.longHome ? join(root, `home-${'x'.repeat(90)}`) : join(root, 'home');
  const wheels = join(root, 'wheels');
  const src = join(root, 'hello-server-src');
  await mkdir(wheels, { recursive: true, mode: 0o755 });
  await cp(join(FIXTURES, 'python-hello-server'), src, { recursive: true });
  const built = await runProgram(
    'python3',
    ['-c', 'import sys, minipaas_build; print(minipaas_build.build_wheel(sys.argv[1]))', wheels],
    { cwd: src, env: { PATH, PYTHONDONTWRITEBYTECODE: '1' } },
  );
  expect(built.code).toBe(0);
  await chmod(wheels, 0o755);
  for (const f of await readdir(wheels)) await chmod(join(wheels, f), 0o644);
  // The platform's own environment: PATH plus pip's settings for a local index.
  const platformEnv = { PATH, PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels };
  return { root, home, wheels, platformEnv };
}

interface Built {
  staging: string;
  release: string;
  detected: DetectedStack;
  log: string;
}

/** Stages the fixture, runs the detected steps like the builder's #install, then moves it like #release. */
async function buildApp(p: Awaited<ReturnType<typeof platform>>, fixture: string): Promise<Built> {
  const app = `${fixture}-${randomUUID().slice(0, 8)}`;
  const staging = join(p.home, 'builds', randomUUID());
  const cache = join(p.home, 'cache', app);
  await mkdir(join(p.home, 'builds'), { recursive: true, mode: 0o711 });
  await mkdir(cache, { recursive: true, mode: 0o700 });
  await chmod(p.home, 0o711);
  await chmod(join(p.home, 'cache'), 0o711);
  await cp(join(FIXTURES, fixture), staging, { recursive: true });
  const detected = await detectStack(staging, PATH, process.execPath);
  if (APP) {
    await chownTree(staging, APP.uid, APP.gid);
    await chownTree(cache, APP.uid, APP.gid);
  }
  // The builder's environment: buildEnv's allow-list of the platform's env (PIP_* included), then the step's.
  // PIP_* are also set first, so the test does not depend on that list (docs/stacks.md).
  const fromPlatform = buildEnv(cache, p.platformEnv);
  const log: string[] = [];
  for (const step of detected.steps) {
    const res = await run(step.program, step.args, {
      cwd: staging,
      env: {
        PIP_NO_INDEX: p.platformEnv.PIP_NO_INDEX,
        PIP_FIND_LINKS: p.wheels,
        ...fromPlatform,
        ...step.env,
      },
    });
    log.push(`$ ${step.program} ${step.args[0]}`, res.out);
    if (res.code !== 0) throw new Error(`${step.program} ${step.args.join(' ')} failed:\n${log.join('\n')}`);
  }
  const release = join(p.home, 'releases', app, 'v1');
  await mkdir(join(release, '..'), { recursive: true, mode: 0o750 });
  if (APP) await lockTree(staging, APP.gid);
  await rename(staging, release);
  if (APP) {
    await chmod(join(p.home, 'releases'), 0o711);
    await chown(join(release, '..'), 0, APP.gid);
  }
  return { staging, release, detected, log: log.join('\n') };
}

/** Runs the web command like the agent: `/bin/sh -c "exec CMD"` in the release dir; returns the body of GET /. */
async function serve(b: Built): Promise<{ status: number; body: string }> {
  const env = { ...b.detected.env };
  if (env.PATH) env.PATH = env.PATH.replace(b.staging, b.release);
  const port = await freePort();
  const child = spawn('/bin/sh', ['-c', `exec ${b.detected.commands.web}`], {
    cwd: b.release,
    env: { ...env, PORT: String(port) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(APP ?? {}),
  });
  if (child.pid) children.push(child.pid);
  let output = '';
  child.stdout?.on('data', (d) => {
    output += d;
  });
  child.stderr?.on('data', (d) => {
    output += d;
  });
  let exited: number | null | undefined;
  child.on('exit', (code) => {
    exited = code;
  });
  try {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (exited !== undefined) throw new Error(`web exited with ${exited}:\n${output}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/`);
        return { status: res.status, body: await res.text() };
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`web never answered:\n${output}`);
  } finally {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  }
}

describe.skipIf(!HAS_PYTHON)('Python stack, built and moved for real', () => {
  it('a Heroku-style app (Procfile + requirements.txt) runs unchanged from its release dir', async () => {
    // A long home: pip writes its long-shebang form (`#!/bin/sh` + `'''exec' ...`), relocated too.
    const p = await platform({ longHome: true });
    const b = await buildApp(p, 'python-app');
    expect(b.detected.stack).toBe('python');
    expect(b.detected.commands).toEqual({ web: 'hello-serve app:app' });
    expect(b.log).toMatch(/Successfully installed hello-server-1\.0/);
    expect(b.log).toMatch(/relocatable virtualenv: [1-9]\d* scripts/);
    await expect(stat(b.staging)).rejects.toMatchObject({ code: 'ENOENT' });
    const script = await readFile(join(b.release, PYTHON_VENV, 'bin', 'hello-serve'), 'utf8');
    expect(script).not.toContain(b.staging);
    expect(
      script.startsWith(
        `#!/bin/sh\n'''exec' "$(dirname -- "$(readlink -f -- "$0")")/python" "$0" "$@"\n' '''\n`,
      ),
    ).toBe(true);
    const res = await serve(b);
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^hello from python 3\.\d+, prefix /);
    expect(res.body.trim().endsWith(join(b.release, PYTHON_VENV))).toBe(true);
  }, 120_000);

  it('a pyproject.toml app without a Procfile: `pip install .`, its one console script is the web process', async () => {
    const p = await platform();
    const b = await buildApp(p, 'python-pyproject-app');
    expect(b.detected).toMatchObject({ stack: 'python', commands: { web: 'pyapp-web' } });
    expect(b.log).toMatch(/Successfully installed .*hello-server-1\.0/);
    // The short path: pip wrote plain `#!<venv>/bin/python` shebangs, relocated as well.
    expect(b.log).toMatch(/relocatable virtualenv: [1-9]\d* scripts/);
    const res = await serve(b);
    expect(res).toEqual({ status: 200, body: `pyapp on ${join(b.release, PYTHON_VENV)}\n` });
  }, 120_000);

  it('without the local index, the registry path is the default and an offline build fails clearly', async () => {
    const p = await platform();
    const d = await mkdtemp(join(tmpdir(), 'mp-python-nowheel-'));
    roots.push(d);
    await cp(join(FIXTURES, 'python-app'), d, { recursive: true });
    const detected = await detectStack(d, PATH, process.execPath);
    const install = detected.steps[1];
    expect(install).toMatchObject({
      program: 'python',
      args: ['-m', 'pip', 'install', '-r', 'requirements.txt'],
    });
    expect(Object.keys(install?.env ?? {}).filter((k) => /INDEX|FIND_LINKS/.test(k))).toEqual([]);
    // With an index that has no such package (an empty find-links dir, no PyPI): pip's own error.
    if (APP) await chownTree(d, APP.uid, APP.gid);
    const empty = join(p.root, 'empty');
    await mkdir(empty, { mode: 0o755 });
    const env = { ...buildEnv(join(d, '.cache'), { PATH }), PIP_NO_INDEX: '1', PIP_FIND_LINKS: empty };
    const venv = detected.steps[0];
    if (!venv || !install) throw new Error('no steps');
    expect((await run(venv.program, venv.args, { cwd: d, env: { ...env, ...venv.env } })).code).toBe(0);
    const res = await run(install.program, install.args, { cwd: d, env: { ...env, ...install.env } });
    expect(res.code).not.toBe(0);
    expect(res.out).toMatch(/No matching distribution found for hello-server==1\.0/);
  }, 120_000);
});
