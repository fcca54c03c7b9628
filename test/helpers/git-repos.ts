/**
 * Real git repositories for tests: a work tree with commits made by the system git, published as bare
 * repositories served by a real `git daemon` on a free port (git://127.0.0.1:PORT/NAME.git).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './platform.ts';
import { freePort } from './postgres-server.ts';

const run = promisify(execFile);

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};

/** Runs git with an argument array; returns stdout. */
export async function gitCmd(args: string[], cwd?: string): Promise<string> {
  const r = await run('git', args, { cwd, env: GIT_ENV, maxBuffer: 16 * 1024 * 1024 });
  return r.stdout;
}

export interface TestRepo {
  /** The work tree. */
  dir: string;
  /** The bare repository the daemon serves. */
  bare: string;
  /** Writes files, commits them on `branch` and pushes to the bare repository; returns the SHA. */
  commit(files: Record<string, string>, message: string, branch?: string): Promise<string>;
  /** Deletes `branch` from the bare repository. */
  deleteBranch(branch: string): Promise<void>;
}

export interface GitServer {
  root: string;
  port: number;
  /** git://127.0.0.1:PORT/NAME.git */
  url(name: string): string;
  repo(name: string): Promise<TestRepo>;
  close(): Promise<void>;
}

/** Starts `git daemon` serving bare repositories under a temporary root. */
export async function startGitServer(): Promise<GitServer> {
  const root = await mkdtemp(join(tmpdir(), 'mp-gitd-'));
  const port = await freePort();
  const daemon: ChildProcess = spawn(
    'git',
    [
      'daemon',
      '--reuseaddr',
      '--export-all',
      `--base-path=${root}`,
      '--listen=127.0.0.1',
      `--port=${port}`,
      root,
    ],
    { stdio: 'ignore', env: GIT_ENV },
  );
  const url = (name: string) => `git://127.0.0.1:${port}/${name}.git`;
  const workTrees: string[] = [];
  await waitFor('git daemon to answer', async () => {
    await mkdir(join(root, 'probe.git'), { recursive: true });
    await gitCmd(['init', '--quiet', '--bare', join(root, 'probe.git')]);
    return gitCmd(['ls-remote', url('probe')]).then(
      () => true,
      () => null,
    );
  });
  return {
    root,
    port,
    url,
    async repo(name) {
      const dir = await mkdtemp(join(tmpdir(), `mp-repo-${name}-`));
      workTrees.push(dir);
      const bare = join(root, `${name}.git`);
      await gitCmd(['init', '--quiet', '--bare', '-b', 'main', bare]);
      await gitCmd(['init', '--quiet', '-b', 'main', dir]);
      await gitCmd(['remote', 'add', 'origin', bare], dir);
      return {
        dir,
        bare,
        async commit(files, message, branch = 'main') {
          const current = (
            await gitCmd(['rev-parse', '--abbrev-ref', 'HEAD'], dir).catch(() => 'main')
          ).trim();
          if (current !== branch) {
            const exists = await gitCmd(['rev-parse', '--verify', '--quiet', branch], dir).then(
              () => true,
              () => false,
            );
            await gitCmd(['checkout', '--quiet', ...(exists ? [] : ['-b']), branch], dir).catch(async () => {
              // first commit of the repository: HEAD is unborn
              await gitCmd(['checkout', '--quiet', '--orphan', branch], dir);
            });
          }
          for (const [path, body] of Object.entries(files)) {
            await mkdir(dirname(join(dir, path)), { recursive: true });
            await writeFile(join(dir, path), body);
          }
          await gitCmd(['add', '-A'], dir);
          await gitCmd(['commit', '--quiet', '-m', message], dir);
          await gitCmd(['push', '--quiet', 'origin', `${branch}:refs/heads/${branch}`], dir);
          return (await gitCmd(['rev-parse', 'HEAD'], dir)).trim();
        },
        async deleteBranch(branch) {
          await gitCmd(['push', '--quiet', 'origin', `:refs/heads/${branch}`], dir);
        },
      };
    },
    async close() {
      daemon.kill('SIGTERM');
      await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
      await rm(root, { recursive: true, force: true });
      for (const d of workTrees) await rm(d, { recursive: true, force: true });
    },
  };
}

/** A Procfile Node app answering `text` on every path. */
export function procfileApp(text: string): Record<string, string> {
  return {
    Procfile: 'web: node server.js\n',
    'package.json': JSON.stringify({ name: 'git-app', version: '1.0.0', private: true }),
    'server.js': `require('node:http').createServer((q, s) => s.end(${JSON.stringify(text)})).listen(process.env.PORT);\n`,
  };
}
