/**
 * Decides how to run a release directory on the process runtime:
 * 1. a Procfile (process types and their commands);
 * 2. a package.json with a `start` script (Node; dependencies installed with the lockfile's package manager);
 * 3. an index.html (static site served by the built-in static server);
 * else MINIPAAS_ERR_NO_STACK.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MinipaasError, parseProcfile } from '@minipaas/core';

export type PackageManager = 'npm' | 'yarn' | 'pnpm';

/** One program the builder runs in the build dir (as the app's user), e.g. a dependency install. */
export interface BuildStep {
  /** Program name (looked up on PATH) or absolute path; run with an argument array, never a shell. */
  program: string;
  args: string[];
  /** Extra environment for this step (on top of the build environment). */
  env?: Record<string, string>;
}

export interface DetectedStack {
  stack: 'procfile' | 'node' | 'static' | 'command';
  /** Process type -> command line. */
  commands: Record<string, string>;
  /** Build steps in order (dependency installs); empty when there is nothing to build. */
  steps: BuildStep[];
  /**
   * The Procfile `release:` command (Heroku's release phase): run once per release before it goes live,
   * never as a process type (it is not in `commands`).
   */
  releaseCommand: string | null;
  /** Env added to every instance (PATH to local binaries, NODE_ENV). */
  env: Record<string, string>;
}

export const STATIC_SERVER = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'assets',
  'static-server.js',
);

interface PackageJson {
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  packageManager?: string;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
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

export async function detectStack(dir: string, pathEnv: string, nodeBin: string): Promise<DetectedStack> {
  const pkg = await readPackageJson(dir);
  const env: Record<string, string> = {};
  if (pkg) {
    env.PATH = `${join(dir, 'node_modules', '.bin')}:${pathEnv}`;
    env.NODE_ENV = 'production';
  }
  const install = pkg ? installStep(dir, pkg) : null;
  const steps = install ? [install] : [];
  const procfile = join(dir, 'Procfile');
  if (existsSync(procfile)) {
    const { release, ...commands } = parseProcfile(await readFile(procfile, 'utf8'));
    if (Object.keys(commands).length === 0)
      throw new MinipaasError('MINIPAAS_ERR_NO_STACK', 'Procfile has no process types');
    return { stack: 'procfile', commands, steps, env, releaseCommand: release ?? null };
  }
  const start = pkg?.scripts?.start;
  if (pkg && start) return { stack: 'node', commands: { web: start }, steps, env, releaseCommand: null };
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
    pkg
      ? 'package.json has no "start" script and there is no Procfile: add one of them'
      : 'could not detect how to run this app: add a Procfile, a package.json with a "start" script, or an index.html',
  );
}
