/**
 * Runs the system `git` for the platform: argument arrays only (execFile, never a shell), no prompts,
 * network transports only, credentials passed in the child's environment (never in its arguments, which
 * other users can read in /proc, and never in a URL), and every message that leaves here redacted.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import { ALLOWED_PROTOCOLS, redactUrl } from './git-url.ts';

/** How the platform authenticates to a private repository. */
export type GitCredential =
  | { kind: 'token' /** `TOKEN` or `USER:TOKEN` (HTTPS basic auth). */; value: string }
  | { kind: 'ssh-key' /** An OpenSSH private key (a deploy key). */; value: string };

export interface GitRunOptions {
  /** Working directory (default: the process's). */
  cwd?: string;
  /** Kill git after this long (default 10 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Extra environment (GIT_INDEX_FILE, ...). */
  env?: Record<string, string>;
  /** Values that must never appear in an error message (tokens). */
  secrets?: readonly string[];
  /** Bytes of stdout kept (default 16 MiB). */
  maxBuffer?: number;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/** The environment every git run gets: no prompts, no system/global config surprises, network only. */
export function baseGitEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? tmpdir(),
    LANG: 'C',
    LC_ALL: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '/bin/false',
    SSH_ASKPASS: '/bin/false',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ALLOW_PROTOCOL: ALLOWED_PROTOCOLS,
  };
}

/** Replaces secrets and URL credentials in `text`. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s]*@/gi, '$1***@');
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('***');
  return out;
}

/** Runs `git ARGS` and returns its stdout; a failure is a MinipaasError with git's (redacted) message. */
export function git(args: readonly string[], opts: GitRunOptions = {}): Promise<string> {
  const env = { ...baseGitEnv(), ...opts.env };
  const command = subcommand(args);
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args as string[],
      {
        cwd: opts.cwd,
        env,
        timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: opts.maxBuffer ?? 16 * 1024 * 1024,
        encoding: 'utf8',
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        if ((err as Error).name === 'AbortError') return reject(err);
        const killed = (err as { killed?: boolean }).killed;
        const detail = redact(String(stderr || (err as Error).message), opts.secrets)
          .trim()
          .split('\n')
          .filter((l) => l.trim() !== '')
          .slice(-4)
          .join('; ');
        reject(
          new MinipaasError(
            'MINIPAAS_ERR_GIT',
            killed ? `git ${command} timed out` : `git ${command} failed: ${detail || `exit ${err.code}`}`,
          ),
        );
      },
    );
  });
}

/** The git command in `args` (after global options such as `-C DIR` and `--git-dir DIR`). */
function subcommand(args: readonly string[]): string {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '-C' || a === '--git-dir' || a === '--work-tree' || a === '-c') i++;
    else if (!a.startsWith('-')) return a;
  }
  return 'command';
}

/**
 * Environment for a fetch from `url` with `credential`: an HTTPS token becomes an Authorization header
 * scoped to the URL's origin (GIT_CONFIG_* variables), a deploy key a 0600 file for ssh. `cleanup`
 * removes the key file.
 */
export async function credentialEnv(
  url: string,
  credential: GitCredential | null,
): Promise<{ env: Record<string, string>; secrets: string[]; cleanup: () => Promise<void> }> {
  const none = { env: {}, secrets: [], cleanup: async () => undefined };
  if (!credential) return none;
  if (credential.kind === 'token') {
    if (!/^https?:\/\//i.test(url))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `an HTTPS token needs an http(s) URL; ${redactUrl(url)} is not one (use an SSH deploy key)`,
      );
    const origin = new URL(url).origin;
    const [user, token] = credential.value.includes(':')
      ? [
          credential.value.slice(0, credential.value.indexOf(':')),
          credential.value.slice(credential.value.indexOf(':') + 1),
        ]
      : ['x-access-token', credential.value];
    const basic = Buffer.from(`${user}:${token}`).toString('base64');
    return {
      env: {
        GIT_CONFIG_COUNT: '1',
        GIT_CONFIG_KEY_0: `http.${origin}/.extraHeader`,
        GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
      },
      secrets: [credential.value, token, basic],
      cleanup: async () => undefined,
    };
  }
  const dir = await mkdtemp(join(tmpdir(), 'minipaas-key-'));
  const keyFile = join(dir, 'id');
  await writeFile(keyFile, credential.value.endsWith('\n') ? credential.value : `${credential.value}\n`, {
    mode: 0o600,
  });
  await chmod(keyFile, 0o600);
  // GIT_SSH_COMMAND is read by a shell: only our own temporary path goes in, single-quoted.
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return {
    env: {
      GIT_SSH_COMMAND: `ssh -i ${q(keyFile)} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${q(join(dir, 'known_hosts'))}`,
    },
    secrets: [],
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
