/**
 * Decides how to build and run a release directory on the process runtime, the way Heroku's buildpacks
 * detect apps. Every language whose manifest is present contributes its build steps and its `bin` on PATH:
 * - Node: package.json (dependencies installed with the lockfile's package manager);
 * - Python: requirements.txt, else Pipfile (pipenv), else pyproject.toml (`pip install .`), into a
 *   relocatable virtualenv `.minipaas/venv` whose `bin` comes first on PATH;
 * - Ruby: Gemfile (+ Gemfile.lock), `bundle install` in deployment mode into vendor/bundle;
 * - Go: go.mod, `go build -o bin/ ./...`.
 * A language whose toolchain the host lacks is MINIPAAS_ERR_NO_STACK ("use the Docker runtime").
 * The process types come from the Procfile; without one: package.json's `start` script, else the
 * language's clear default (a single pyproject console script, bin/rails or config.ru, the root Go main
 * package), else an index.html (static site served by the built-in static server); else MINIPAAS_ERR_NO_STACK.
 */
import { constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MinipaasError, parseProcfile } from '@minipaas/core';

export type PackageManager = 'npm' | 'yarn' | 'pnpm';

/** One program the builder runs in the build dir (as the app's user), e.g. a dependency install. */
export interface BuildStep {
  /**
   * Program name or absolute path; run with an argument array, never a shell. A name is looked up on the
   * step's PATH (`env.PATH` when set, else the build environment's).
   */
  program: string;
  args: string[];
  /** Extra environment for this step (on top of the build environment). */
  env?: Record<string, string>;
  /** What the deploy log shows instead of program + args, when those are long (an inline script). */
  label?: string;
}

export interface DetectedStack {
  stack: 'procfile' | 'node' | 'static' | 'command' | 'python' | 'ruby' | 'go';
  /** Process type -> command line. */
  commands: Record<string, string>;
  /** Build steps in order (dependency installs); empty when there is nothing to build. */
  steps: BuildStep[];
  /**
   * The Procfile `release:` command (Heroku's release phase): run once per release before it goes live,
   * never as a process type (it is not in `commands`).
   */
  releaseCommand: string | null;
  /**
   * Env added to every instance (PATH to local binaries, NODE_ENV). Paths under the build dir appear only
   * in PATH (the builder rewrites them to the release dir).
   */
  env: Record<string, string>;
}

export const STATIC_SERVER = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'assets',
  'static-server.js',
);

/** The Python virtualenv, relative to the app dir. */
export const PYTHON_VENV = '.minipaas/venv';

interface PackageJson {
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  packageManager?: string;
}

/** What one language adds: build steps, PATH entries (absolute, first wins), env, its default web command. */
interface Language {
  stack: 'node' | 'python' | 'ruby' | 'go';
  steps: BuildStep[];
  path: string[];
  env: Record<string, string>;
  /** The web command when there is no Procfile, or why there is none. */
  web: { command: string } | { missing: string };
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The first executable `name` on `pathEnv`, or null. */
async function which(name: string, pathEnv: string): Promise<string | null> {
  for (const d of pathEnv.split(':')) {
    if (!d) continue;
    try {
      await access(join(d, name), constants.X_OK);
      return join(d, name);
    } catch {}
  }
  return null;
}

function unsupported(what: string, tool: string, hint: string): MinipaasError {
  return new MinipaasError(
    'MINIPAAS_ERR_NO_STACK',
    `unsupported stack on this host: ${what} needs ${tool}, which is not installed here; install ${hint}, or use the Docker runtime`,
  );
}

async function readPackageJson(dir: string): Promise<PackageJson | null> {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return null;
  try {
    const data: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('not an object');
    return data as PackageJson;
  } catch (err) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `package.json is not valid JSON: ${(err as Error).message}`,
    );
  }
}

function installStep(dir: string, pkg: PackageJson): BuildStep | null {
  if (!pkg.dependencies || Object.keys(pkg.dependencies).length === 0) return null;
  if (existsSync(join(dir, 'pnpm-lock.yaml')) || pkg.packageManager?.startsWith('pnpm')) {
    return { program: 'pnpm', args: ['install', '--prod', '--frozen-lockfile'] };
  }
  if (existsSync(join(dir, 'yarn.lock')) || pkg.packageManager?.startsWith('yarn')) {
    return { program: 'yarn', args: ['install', '--production', '--frozen-lockfile'] };
  }
  if (existsSync(join(dir, 'package-lock.json')) || existsSync(join(dir, 'npm-shrinkwrap.json'))) {
    return { program: 'npm', args: ['ci', '--omit=dev', '--no-audit', '--no-fund'] };
  }
  return { program: 'npm', args: ['install', '--omit=dev', '--no-audit', '--no-fund'] };
}

function node(dir: string, pkg: PackageJson): Language {
  const install = installStep(dir, pkg);
  const start = pkg.scripts?.start;
  return {
    stack: 'node',
    steps: install ? [install] : [],
    path: [join(dir, 'node_modules', '.bin')],
    env: { NODE_ENV: 'production' },
    web: start
      ? { command: start }
      : { missing: 'package.json has no "start" script and there is no Procfile: add one of them' },
  };
}

/**
 * Rewrites the shebangs of the virtualenv's scripts (`#!<venv>/bin/python`, or pip's `#!/bin/sh` +
 * `'''exec' <venv>/bin/python` form for paths over 127 bytes or with spaces) into a header that finds `python` next to the script,
 * so the venv keeps working after the build dir moves to the release dir. `bin/python` itself is a
 * symlink to the host's interpreter and `pyvenv.cfg` names only the host's, so nothing else moves.
 */
const RELOCATE_VENV = [
  'import os,re,sys',
  "b=os.path.abspath(sys.argv[1]).encode()+b'/bin'",
  String.raw`h=b"#!/bin/sh\n'''exec' \"$(dirname -- \"$(readlink -f -- \"$0\")\")/python\" \"$0\" \"$@\"\n' '''\n"`,
  String.raw`r=re.compile(rb"(?:#!"+re.escape(b)+rb"/python[^\n]*\n|#!/bin/sh\n'''exec' \"?"+re.escape(b)+rb"/python[^\n]*\n' '''\n)(.*)",re.S)`,
  'ps=[p for p in (os.path.join(b,f) for f in os.listdir(b)) if os.path.isfile(p) and not os.path.islink(p)]',
  "n=[open(p,'wb').write(h+m.group(1)) for p in ps for m in [r.match(open(p,'rb').read())] if m]",
  "print(f'relocatable virtualenv: {len(n)} scripts in {sys.argv[1]}/bin find python next to themselves')",
].join(';');

/** `[project.scripts]` of a pyproject.toml (`name = "module:function"` lines), read without a TOML parser. */
function pyprojectScripts(text: string): string[] {
  const names: string[] = [];
  let inScripts = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line.startsWith('[')) inScripts = line.replace(/\s+/g, '') === '[project.scripts]';
    else if (inScripts) {
      const m = /^"?([A-Za-z0-9_.-]+)"?\s*=/.exec(line);
      if (m?.[1]) names.push(m[1]);
    }
  }
  return names;
}

/** The interpreter the app asks for (`.python-version` or Heroku's runtime.txt `python-3.12.1`): `python3.12`. */
function pythonProgram(dir: string): { program: string; from: string | null } {
  for (const [file, re] of [
    ['.python-version', /^\s*(?:python-?)?(3\.\d+)/],
    ['runtime.txt', /^\s*python-(3\.\d+)/],
  ] as const) {
    const f = join(dir, file);
    if (!existsSync(f)) continue;
    const m = re.exec(readFileSync(f, 'utf8'));
    if (!m?.[1]) {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `${file} does not name a Python 3 version (e.g. ${file === 'runtime.txt' ? 'python-3.11.2' : '3.11'})`,
      );
    }
    return { program: `python${m[1]}`, from: file };
  }
  return { program: 'python3', from: null };
}

async function python(dir: string, pathEnv: string, manifest: string): Promise<Language> {
  const { program, from } = pythonProgram(dir);
  if (!(await which(program, pathEnv))) {
    throw unsupported(
      `a Python app (${from ?? manifest})`,
      program,
      `${program} with its venv module (Debian: apt-get install python3 python3-venv)`,
    );
  }
  const venvBin = join(dir, PYTHON_VENV, 'bin');
  // Steps after the first run the venv's own `python` (found on this PATH), as if the venv were activated.
  const env = {
    PATH: `${venvBin}:${pathEnv}`,
    VIRTUAL_ENV: join(dir, PYTHON_VENV),
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    PIP_NO_INPUT: '1',
  };
  const steps: BuildStep[] = [{ program, args: ['-m', 'venv', '--clear', PYTHON_VENV] }];
  if (manifest === 'requirements.txt') {
    steps.push({ program: 'python', args: ['-m', 'pip', 'install', '-r', 'requirements.txt'], env });
  } else if (manifest === 'Pipfile') {
    if (!(await which('pipenv', pathEnv))) {
      throw unsupported('a Python app with a Pipfile', 'pipenv', 'pipenv (or add a requirements.txt)');
    }
    if (!existsSync(join(dir, 'Pipfile.lock'))) {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        'Pipfile.lock is missing: run `pipenv lock` and deploy it with the Pipfile',
      );
    }
    // pipenv installs into the active virtualenv (VIRTUAL_ENV); --deploy fails when the lock is stale.
    steps.push({
      program: 'pipenv',
      args: ['install', '--deploy'],
      env: { ...env, PIPENV_VERBOSITY: '-1', PIPENV_NOSPIN: '1', PIPENV_YES: '1' },
    });
  } else {
    steps.push({ program: 'python', args: ['-m', 'pip', 'install', '.'], env });
  }
  steps.push({
    program: 'python',
    args: ['-c', RELOCATE_VENV, PYTHON_VENV],
    env,
    label: `python -c <rewrite the shebangs of ${PYTHON_VENV}/bin to find python next to them>`,
  });
  let web: Language['web'] = {
    missing: `a Python app (${manifest}) needs a Procfile naming its web process, e.g. "web: gunicorn app:app"`,
  };
  if (manifest === 'pyproject.toml') {
    const scripts = pyprojectScripts(await readFile(join(dir, manifest), 'utf8'));
    if (scripts.length === 1 && scripts[0]) web = { command: scripts[0] };
    else if (scripts.length > 1) {
      web = {
        missing: `pyproject.toml has ${scripts.length} [project.scripts] (${scripts.join(', ')}) and there is no Procfile: add one with a web: line`,
      };
    }
  }
  return {
    stack: 'python',
    steps,
    path: [venvBin],
    env: { PYTHONUNBUFFERED: '1' },
    web,
  };
}

async function ruby(dir: string, pathEnv: string): Promise<Language> {
  for (const tool of ['ruby', 'bundle']) {
    if (!(await which(tool, pathEnv))) {
      throw unsupported(
        'a Ruby app (Gemfile)',
        tool,
        'Ruby and Bundler (Debian: apt-get install ruby ruby-bundler)',
      );
    }
  }
  if (!existsSync(join(dir, 'Gemfile.lock'))) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      'Gemfile.lock is missing: run `bundle lock` and deploy it with the Gemfile',
    );
  }
  // Settings go to the app's own .bundle/config with a relative path, so `bundle exec` finds the gems
  // after the move to the release dir.
  const set = (k: string, v: string): BuildStep => ({
    program: 'bundle',
    args: ['config', 'set', '--local', k, v],
  });
  const web: Language['web'] = existsSync(join(dir, 'bin', 'rails'))
    ? { command: 'bin/rails server -p $PORT -e $RAILS_ENV' }
    : existsSync(join(dir, 'config.ru'))
      ? { command: 'bundle exec rackup config.ru -p $PORT' }
      : { missing: 'a Ruby app (Gemfile) needs a Procfile naming its web process, or a config.ru' };
  return {
    stack: 'ruby',
    steps: [
      set('deployment', 'true'),
      set('path', 'vendor/bundle'),
      set('without', 'development:test'),
      { program: 'bundle', args: ['install', '--jobs', '4'] },
    ],
    path: [join(dir, 'bin')],
    env: { RACK_ENV: 'production', RAILS_ENV: 'production' },
    web,
  };
}

async function go(dir: string, pathEnv: string): Promise<Language> {
  if (!(await which('go', pathEnv)))
    throw unsupported('a Go app (go.mod)', 'go', 'Go (Debian: apt-get install golang-go)');
  const mod = /^\s*module\s+"?([^\s"]+)"?/m.exec(await readFile(join(dir, 'go.mod'), 'utf8'))?.[1];
  const parts = (mod ?? '').split('/');
  // `go build -o bin/` names a package's binary after its import path, without a /vN suffix.
  const name = parts.length > 1 && /^v\d+$/.test(parts.at(-1) ?? '') ? parts.at(-2) : parts.at(-1);
  const rootMain = readdirSync(dir).some(
    (f) =>
      f.endsWith('.go') &&
      !f.endsWith('_test.go') &&
      /^package\s+main\b/m.test(readFileSync(join(dir, f), 'utf8')),
  );
  return {
    stack: 'go',
    // GOTOOLCHAIN=local: build with the host's Go, never download another toolchain.
    steps: [
      { program: 'go', args: ['build', '-trimpath', '-o', 'bin/', './...'], env: { GOTOOLCHAIN: 'local' } },
    ],
    path: [join(dir, 'bin')],
    env: {},
    web:
      rootMain && name
        ? { command: `bin/${basename(name)}` }
        : {
            missing:
              'a Go app (go.mod) needs a Procfile naming its web process, or a main package at its root',
          },
  };
}

const PYTHON_MANIFESTS = ['requirements.txt', 'Pipfile', 'pyproject.toml'];

export async function detectStack(dir: string, pathEnv: string, nodeBin: string): Promise<DetectedStack> {
  const pkg = await readPackageJson(dir);
  const pyManifest = PYTHON_MANIFESTS.find((f) => existsSync(join(dir, f)));
  const langs: Language[] = [];
  if (pkg) langs.push(node(dir, pkg));
  if (pyManifest) langs.push(await python(dir, pathEnv, pyManifest));
  if (existsSync(join(dir, 'Gemfile'))) langs.push(await ruby(dir, pathEnv));
  if (existsSync(join(dir, 'go.mod'))) langs.push(await go(dir, pathEnv));
  // The named stack is the first language other than Node (a Python app with a package.json for its
  // assets is a Python app); Node alone stays `node` (or `procfile` with a Procfile), as before.
  const primary = langs.find((l) => l.stack !== 'node') ?? null;
  const steps = langs.flatMap((l) => l.steps);
  const env: Record<string, string> = Object.assign({}, ...langs.map((l) => l.env));
  if (langs.length > 0) {
    const first = primary ? [primary, ...langs.filter((l) => l !== primary)] : langs;
    env.PATH = [...first.flatMap((l) => l.path), pathEnv].join(':');
  }
  const procfile = join(dir, 'Procfile');
  if (existsSync(procfile)) {
    const { release, ...commands } = parseProcfile(await readFile(procfile, 'utf8'));
    if (Object.keys(commands).length === 0)
      throw new MinipaasError('MINIPAAS_ERR_NO_STACK', 'Procfile has no process types');
    return { stack: primary?.stack ?? 'procfile', commands, steps, env, releaseCommand: release ?? null };
  }
  const nodeLang = langs.find((l) => l.stack === 'node');
  for (const lang of [primary, nodeLang]) {
    if (lang && 'command' in lang.web) {
      return {
        stack: primary?.stack ?? 'node',
        commands: { web: lang.web.command },
        steps,
        env,
        releaseCommand: null,
      };
    }
  }
  if (primary && 'missing' in primary.web)
    throw new MinipaasError('MINIPAAS_ERR_NO_STACK', primary.web.missing);
  if (existsSync(join(dir, 'index.html'))) {
    return {
      stack: 'static',
      commands: { web: `${shQuote(nodeBin)} ${shQuote(STATIC_SERVER)} .` },
      steps: [],
      env: {},
      releaseCommand: null,
    };
  }
  throw new MinipaasError(
    'MINIPAAS_ERR_NO_STACK',
    nodeLang && 'missing' in nodeLang.web
      ? nodeLang.web.missing
      : 'could not detect how to run this app: add a Procfile, a package.json with a "start" script, a requirements.txt, pyproject.toml, Pipfile, Gemfile or go.mod, or an index.html',
  );
}
