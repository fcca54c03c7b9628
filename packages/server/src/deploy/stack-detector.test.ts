import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runProgram } from './executor.ts';
import { detectStack, PYTHON_VENV, STATIC_SERVER } from './stack-detector.ts';

async function dir(files: Record<string, string>): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mp-stack-'));
  for (const [name, body] of Object.entries(files)) {
    await mkdir(dirname(join(d, name)), { recursive: true });
    await writeFile(join(d, name), body);
  }
  return d;
}

/** A PATH with fake executables `names` (and nothing else), for toolchain checks. */
async function fakePath(...names: string[]): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mp-stack-bin-'));
  for (const n of names) {
    await writeFile(join(d, n), '#!/bin/sh\nexit 0\n');
    await chmod(join(d, n), 0o755);
  }
  return d;
}

/** In CI (.ci/setup.d/40-python.sh installs the toolchains) a missing one fails instead of skipping. */
function onPath(name: string): boolean {
  if (process.env.CI === 'true') return true;
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('detectStack', () => {
  it('prefers a Procfile, and installs Node deps with the lockfile manager', async () => {
    const d = await dir({
      Procfile: 'web: node server.js\nworker: node worker.js\n',
      'package.json': JSON.stringify({ scripts: { start: 'node other.js' }, dependencies: { x: '1' } }),
      'package-lock.json': '{}',
    });
    const s = await detectStack(d, '/usr/bin', '/node');
    expect(s.stack).toBe('procfile');
    expect(s.commands).toEqual({ web: 'node server.js', worker: 'node worker.js' });
    expect(s.steps).toEqual([{ program: 'npm', args: ['ci', '--omit=dev', '--no-audit', '--no-fund'] }]);
    expect(s.env.PATH).toBe(`${d}/node_modules/.bin:/usr/bin`);
  });
  it('uses the start script, with yarn or pnpm from their lockfiles, and no install without deps', async () => {
    const yarn = await detectStack(
      await dir({
        'package.json': JSON.stringify({ scripts: { start: 'node s.js' }, dependencies: { a: '1' } }),
        'yarn.lock': '',
      }),
      '',
      '/node',
    );
    expect(yarn).toMatchObject({
      stack: 'node',
      commands: { web: 'node s.js' },
      steps: [{ program: 'yarn' }],
    });
    const pnpm = await detectStack(
      await dir({
        'package.json': JSON.stringify({ scripts: { start: 'x' }, dependencies: { a: '1' } }),
        'pnpm-lock.yaml': '',
      }),
      '',
      '/node',
    );
    expect(pnpm.steps[0]?.program).toBe('pnpm');
    const none = await detectStack(
      await dir({ 'package.json': JSON.stringify({ scripts: { start: 'x' } }) }),
      '',
      '/node',
    );
    expect(none.steps).toEqual([]);
  });
  it('serves a static site with the built-in server', async () => {
    const s = await detectStack(await dir({ 'index.html': '<h1>x</h1>' }), '', '/opt/node bin/node');
    expect(s.stack).toBe('static');
    expect(s.commands.web).toBe(`'/opt/node bin/node' '${STATIC_SERVER}' .`);
  });
  it('explains what is missing', async () => {
    await expect(detectStack(await dir({ 'README.md': 'hi' }), '', '/node')).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_NO_STACK',
    });
    await expect(detectStack(await dir({ 'package.json': '{}' }), '', '/node')).rejects.toThrow(
      /no "start" script/,
    );
    await expect(detectStack(await dir({ 'package.json': '{oops' }), '', '/node')).rejects.toThrow(
      /not valid JSON/,
    );
    await expect(detectStack(await dir({ Procfile: 'web node x' }), '', '/node')).rejects.toThrow(/line 1/);
  });
});

describe('detectStack: Python', () => {
  it('requirements.txt: a venv, pip install -r, relocation; the venv bin first on PATH; Procfile types', async () => {
    const bin = await fakePath('python3');
    const d = await dir({
      'requirements.txt': 'gunicorn\n',
      Procfile: 'web: gunicorn app:app\nworker: python worker.py\nrelease: python migrate.py\n',
    });
    const s = await detectStack(d, bin, '/node');
    expect(s.stack).toBe('python');
    expect(s.commands).toEqual({ web: 'gunicorn app:app', worker: 'python worker.py' });
    expect(s.releaseCommand).toBe('python migrate.py');
    expect(s.steps.map((x) => [x.program, ...x.args.slice(0, 3)])).toEqual([
      ['python3', '-m', 'venv', '--clear'],
      ['python', '-m', 'pip', 'install'],
      ['python', '-c', expect.stringContaining('relocatable virtualenv'), PYTHON_VENV],
    ]);
    expect(s.steps[1]?.args).toEqual(['-m', 'pip', 'install', '-r', 'requirements.txt']);
    // Later steps find the venv's python first; nothing points pip at an index: the registry is the default.
    expect(s.steps[1]?.env?.PATH).toBe(`${d}/${PYTHON_VENV}/bin:${bin}`);
    expect(Object.keys(s.steps[1]?.env ?? {}).some((k) => /INDEX|FIND_LINKS/.test(k))).toBe(false);
    expect(s.env).toEqual({ PATH: `${d}/${PYTHON_VENV}/bin:${bin}`, PYTHONUNBUFFERED: '1' });
  });
  it('pyproject.toml: pip install . and its single console script as web; several need a Procfile', async () => {
    const bin = await fakePath('python3');
    const one = await dir({
      'pyproject.toml':
        '[project]\nname = "x"\n\n[project.scripts]\nserve = "x:main" # the server\n\n[tool.x]\na = 1\n',
    });
    const s = await detectStack(one, bin, '/node');
    expect(s).toMatchObject({ stack: 'python', commands: { web: 'serve' } });
    expect(s.steps[1]?.args).toEqual(['-m', 'pip', 'install', '.']);
    const two = await dir({ 'pyproject.toml': '[project.scripts]\na = "x:a"\nb = "x:b"\n' });
    await expect(detectStack(two, bin, '/node')).rejects.toThrow(/2 \[project.scripts\] \(a, b\).*Procfile/);
    const none = await dir({ 'pyproject.toml': '[project]\nname = "x"\n' });
    await expect(detectStack(none, bin, '/node')).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_NO_STACK',
      message: expect.stringMatching(/needs a Procfile.*web: gunicorn app:app/),
    });
  });
  it('requirements.txt wins over Pipfile and pyproject.toml; Pipfile needs pipenv and its lock', async () => {
    const py = await fakePath('python3');
    const both = await dir({ 'requirements.txt': '', Pipfile: '', 'pyproject.toml': '', Procfile: 'web: x' });
    expect((await detectStack(both, py, '/node')).steps[1]?.args).toContain('requirements.txt');
    const pipfile = await dir({ Pipfile: '', Procfile: 'web: x' });
    await expect(detectStack(pipfile, py, '/node')).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_NO_STACK',
      message: expect.stringMatching(/Pipfile needs pipenv.*Docker runtime/),
    });
    const withPipenv = await fakePath('python3', 'pipenv');
    await expect(detectStack(pipfile, withPipenv, '/node')).rejects.toThrow(/Pipfile.lock is missing/);
    await writeFile(join(pipfile, 'Pipfile.lock'), '{}');
    const s = await detectStack(pipfile, withPipenv, '/node');
    expect(s.steps[1]).toMatchObject({
      program: 'pipenv',
      args: ['install', '--deploy'],
      env: { VIRTUAL_ENV: join(pipfile, PYTHON_VENV) },
    });
  });
  it('the interpreter named by .python-version or runtime.txt, and a clear error without Python', async () => {
    const bin = await fakePath('python3', 'python3.11');
    const pinned = await dir({ 'requirements.txt': '', '.python-version': '3.11.7\n', Procfile: 'web: x' });
    expect((await detectStack(pinned, bin, '/node')).steps[0]?.program).toBe('python3.11');
    const heroku = await dir({ 'requirements.txt': '', 'runtime.txt': 'python-3.12.1', Procfile: 'web: x' });
    await expect(detectStack(heroku, bin, '/node')).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_NO_STACK',
      message: expect.stringMatching(/runtime.txt.*python3.12.*Docker runtime/),
    });
    const bad = await dir({ 'requirements.txt': '', 'runtime.txt': 'ruby-3', Procfile: 'web: x' });
    await expect(detectStack(bad, bin, '/node')).rejects.toThrow(/does not name a Python 3 version/);
    await expect(detectStack(pinned, await fakePath(), '/node')).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_NO_STACK',
      message: expect.stringMatching(/^unsupported stack on this host: .*python3-venv.*Docker runtime/),
    });
  });
  it('a Python app with a package.json: both install, the stack is python, both bins on PATH', async () => {
    const bin = await fakePath('python3');
    const d = await dir({
      'requirements.txt': '',
      'package.json': JSON.stringify({ dependencies: { a: '1' } }),
      Procfile: 'web: gunicorn app:app',
    });
    const s = await detectStack(d, bin, '/node');
    expect(s.stack).toBe('python');
    expect(s.steps.map((x) => x.program)).toEqual(['npm', 'python3', 'python', 'python']);
    expect(s.env.PATH).toBe(`${d}/${PYTHON_VENV}/bin:${d}/node_modules/.bin:${bin}`);
    expect(s.env.NODE_ENV).toBe('production');
  });
});

describe('detectStack: Go and Ruby', () => {
  it('need their toolchain on the host, else a clear unsupported-stack error', async () => {
    const empty = await fakePath();
    await expect(detectStack(await dir({ 'go.mod': 'module x\n' }), empty, '/node')).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_NO_STACK',
      message: expect.stringMatching(
        /^unsupported stack on this host: a Go app \(go.mod\) needs go.*Docker runtime/,
      ),
    });
    await expect(detectStack(await dir({ Gemfile: '' }), empty, '/node')).rejects.toThrow(
      /unsupported stack on this host: a Ruby app \(Gemfile\) needs ruby.*install Ruby and Bundler/,
    );
  });
  it('Go: go build -o bin/ ./..., the root main package is the web process', async () => {
    const bin = await fakePath('go');
    const d = await dir({
      'go.mod': 'module example.com/hello/v2\n\ngo 1.19\n',
      'main.go': 'package main\n',
    });
    const s = await detectStack(d, bin, '/node');
    expect(s).toMatchObject({
      stack: 'go',
      commands: { web: 'bin/hello' },
      steps: [
        { program: 'go', args: ['build', '-trimpath', '-o', 'bin/', './...'], env: { GOTOOLCHAIN: 'local' } },
      ],
      env: { PATH: `${d}/bin:${bin}` },
    });
    const lib = await dir({ 'go.mod': 'module x\n', 'lib.go': 'package x\n' });
    await expect(detectStack(lib, bin, '/node')).rejects.toThrow(/needs a Procfile.*main package/);
  });
  it('Ruby: bundle install in deployment mode into vendor/bundle; rails, rackup or a Procfile', async () => {
    const bin = await fakePath('ruby', 'bundle');
    await expect(detectStack(await dir({ Gemfile: '' }), bin, '/node')).rejects.toThrow(
      /Gemfile.lock is missing/,
    );
    const rack = await dir({ Gemfile: '', 'Gemfile.lock': '', 'config.ru': '' });
    const s = await detectStack(rack, bin, '/node');
    expect(s).toMatchObject({
      stack: 'ruby',
      commands: { web: 'bundle exec rackup config.ru -p $PORT' },
      env: { RACK_ENV: 'production', RAILS_ENV: 'production', PATH: `${rack}/bin:${bin}` },
    });
    expect(s.steps.map((x) => x.args.join(' '))).toEqual([
      'config set --local deployment true',
      'config set --local path vendor/bundle',
      'config set --local without development:test',
      'install --jobs 4',
    ]);
    const rails = await dir({ Gemfile: '', 'Gemfile.lock': '', 'config.ru': '', 'bin/rails': '' });
    expect((await detectStack(rails, bin, '/node')).commands.web).toBe(
      'bin/rails server -p $PORT -e $RAILS_ENV',
    );
    const plain = await dir({ Gemfile: '', 'Gemfile.lock': '' });
    await expect(detectStack(plain, bin, '/node')).rejects.toThrow(/Ruby app \(Gemfile\) needs a Procfile/);
  });

  const homes: string[] = [];
  afterAll(async () => {
    for (const h of homes) await rm(h, { recursive: true, force: true });
  });

  /** Runs the steps in the build dir, moves it like the builder, and runs the web command from the release dir. */
  async function buildAndRun(d: string): Promise<string> {
    const s = await detectStack(d, process.env.PATH ?? '', process.execPath);
    const home = await mkdtemp(join(tmpdir(), 'mp-stack-home-'));
    homes.push(home);
    for (const step of s.steps) {
      const lines: string[] = [];
      const res = await runProgram(step.program, step.args, {
        cwd: d,
        env: { PATH: process.env.PATH, HOME: home, ...step.env },
        timeoutMs: 120_000,
        onLine: (l) => lines.push(l),
      });
      expect(res.code, lines.join('\n')).toBe(0);
    }
    const release = join(home, 'v1');
    await rename(d, release);
    const env = { ...s.env, PATH: (s.env.PATH ?? '').replace(d, release) };
    return execFileSync('/bin/sh', ['-c', `exec ${s.commands.web}`], {
      cwd: release,
      env: { ...env, HOME: home },
      encoding: 'utf8',
    });
  }

  it.skipIf(!onPath('go'))(
    'Go for real (when the host has go): the binary runs from the release dir',
    async () => {
      const d = await dir({
        'go.mod': 'module example.com/hello\n\ngo 1.19\n',
        'main.go': 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from go") }\n',
      });
      expect(await buildAndRun(d)).toBe('hello from go\n');
    },
    120_000,
  );

  it.skipIf(!onPath('bundle'))(
    'Ruby for real (when the host has bundler): bundle exec from the release dir',
    async () => {
      const d = await dir({
        Gemfile: "source 'https://rubygems.org'\n",
        'Gemfile.lock':
          'GEM\n  remote: https://rubygems.org/\n  specs:\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n',
        Procfile: 'web: bundle exec ruby -e \'puts "hello from ruby #{ENV["RACK_ENV"]}"\'\n',
      });
      expect(await buildAndRun(d)).toBe('hello from ruby production\n');
    },
    120_000,
  );
});
