/**
 * The one way this package runs a program: `execFile` with an argument array (never a shell string),
 * optional stdin, captured output, and a check that the programs a command needs are installed.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { MinipaasError } from '@minipaas/core';

/** Options of {@link runCommand}. */
export interface RunOptions {
  /** Environment of the child (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Working directory of the child. */
  cwd?: string;
  /** Bytes written to the child's stdin. */
  input?: string | Buffer;
  /** Kill the child after this many milliseconds (default 10 minutes). */
  timeoutMs?: number;
}

/** What a finished program printed and how it exited. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `file args...` and resolves with its exit code and output (a non-zero exit does not reject). */
export function runCommand(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 600_000,
        killSignal: 'SIGKILL',
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT')
            return reject(new MinipaasError('MINIPAAS_ERR_TOOL_MISSING', `${file} is not installed`));
          return reject(err);
        }
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs a program and throws with its last stderr line when it exits non-zero. */
export async function runChecked(
  file: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<string> {
  const r = await runCommand(file, args, opts);
  if (r.code !== 0) {
    const why = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' ');
    throw new MinipaasError(
      'MINIPAAS_ERR_INTERNAL',
      `${file} ${args[0] ?? ''} failed (exit ${r.code}): ${why}`,
    );
  }
  return r.stdout;
}

/** The absolute path of `name` on PATH, or undefined. */
export function findOnPath(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Debian packages that provide the programs the toolkit uses (for the error message). */
const PACKAGE_OF: Record<string, string> = {
  docker: 'docker.io',
  openssl: 'openssl',
  caddy: 'caddy',
  'docker-registry': 'docker-registry',
};

/**
 * Throws `MINIPAAS_ERR_TOOL_MISSING` naming every program of `names` that is not on PATH, so a
 * command fails before it has done anything.
 */
export function requireCommands(names: readonly string[], path = process.env.PATH ?? ''): void {
  const missing = names.filter((n) => !findOnPath(n, path));
  if (missing.length === 0) return;
  const pkgs = missing.map((n) => PACKAGE_OF[n] ?? n);
  throw new MinipaasError(
    'MINIPAAS_ERR_TOOL_MISSING',
    `required ${missing.length === 1 ? 'command' : 'commands'} not found on PATH: ${missing.join(', ')} (Debian: apt-get install -y ${pkgs.join(' ')})`,
    { details: { missing } },
  );
}
