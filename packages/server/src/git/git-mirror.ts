/**
 * Per-app bare mirrors under MINIPAAS_HOME/git/mirrors: a build fetches its ref shallowly into the app's
 * mirror (a later build fetches only new objects) and exports the commit's tree, with its submodules,
 * into the deployment's staging directory. The tree is checked like an upload before it is written
 * (size and entry limits, no links leaving the tree).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import { credentialEnv, type GitCredential, git } from './git-runner.ts';
import { checkGitUrl, isCommitId, redactUrl } from './git-url.ts';

/** A commit the platform fetched. */
export interface FetchedCommit {
  sha: string;
  /** The commit's subject line. */
  message: string;
}

/** Limits of an exported tree (the upload limits: `uploads.*`). */
export interface TreeLimits {
  maxUnpackedBytes: number;
  maxEntries: number;
}

export interface FetchOptions {
  credential: GitCredential | null;
  /**
   * Environment for reading the repository (a pre-receive hook's quarantine: GIT_OBJECT_DIRECTORY and
   * GIT_ALTERNATE_OBJECT_DIRECTORIES), so a pushed commit is readable before its ref is updated.
   */
  objectEnv?: Record<string, string>;
  signal?: AbortSignal;
  /** Progress lines for the deploy log (already redacted). */
  say?: (line: string) => void;
}

/** Submodules nested deeper than this are not fetched. */
const MAX_SUBMODULE_DEPTH = 3;
const FETCH_REF = 'refs/minipaas/fetch';

export class GitMirror {
  readonly #root: string;

  /** @param home MINIPAAS_HOME */
  constructor(home: string) {
    this.#root = join(home, 'git', 'mirrors');
  }

  /** The app's mirror (a bare repository). */
  path(appId: string): string {
    return join(this.#root, `${appId}.git`);
  }

  async #ensure(dir: string): Promise<void> {
    if (existsSync(join(dir, 'HEAD'))) return;
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    await git(['init', '--quiet', '--bare', dir]);
    // Builds export from the mirror by commit id; the mirror is ours, nothing else reads it.
    await git(['-C', dir, 'config', 'gc.auto', '0']);
  }

  /** Fetches `ref` (branch, tag or full commit id) of `url` into the app's mirror: depth 1. */
  async fetch(appId: string, url: string, ref: string, o: FetchOptions): Promise<FetchedCommit> {
    return this.#fetchInto(this.path(appId), url, ref, o);
  }

  async #fetchInto(dir: string, url: string, ref: string, o: FetchOptions): Promise<FetchedCommit> {
    checkGitUrl(url);
    await this.#ensure(dir);
    const cred = await credentialEnv(url, o.credential);
    const run = (args: string[]) =>
      git(['-C', dir, ...args], {
        env: cred.env,
        secrets: cred.secrets,
        ...(o.signal ? { signal: o.signal } : {}),
      });
    try {
      o.say?.(`-----> Fetching ${redactUrl(url)} ${ref}`);
      if (isCommitId(ref)) {
        try {
          await run(['fetch', '--quiet', '--depth', '1', '--no-tags', '--', url, ref]);
        } catch {
          // Servers that refuse a want by id: fetch the branches and look for it.
          await run(['fetch', '--quiet', '--no-tags', '--', url, '+refs/heads/*:refs/minipaas/heads/*']);
        }
        await run(['update-ref', FETCH_REF, `${ref}^{commit}`]).catch(() => {
          throw new MinipaasError('MINIPAAS_ERR_GIT', `commit ${ref} is not in ${redactUrl(url)}`);
        });
      } else {
        await run([
          'fetch',
          '--quiet',
          '--depth',
          '1',
          '--no-tags',
          '--force',
          '--',
          url,
          `${ref}:${FETCH_REF}`,
        ]);
      }
    } finally {
      await cred.cleanup();
    }
    return this.commit(dir, FETCH_REF);
  }

  /** The commit `rev` names in repository `dir`, with its subject. */
  async commit(dir: string, rev: string, objectEnv?: Record<string, string>): Promise<FetchedCommit> {
    const env = objectEnv ? { env: objectEnv } : {};
    const sha = (
      await git(
        ['--git-dir', dir, 'rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`],
        env,
      )
    ).trim();
    const message = (await git(['--git-dir', dir, 'log', '-1', '--format=%s', sha], env))
      .trim()
      .slice(0, 500);
    return { sha, message };
  }

  /**
   * Writes commit `sha` of repository `repo` into `dest` (which must not exist yet), then its submodules
   * (fetched from their URLs, relative ones against `url`, with `credential` only for the same origin).
   */
  async export(
    repo: string,
    sha: string,
    dest: string,
    limits: TreeLimits,
    o: FetchOptions & { url: string | null; appId: string },
  ): Promise<void> {
    const budget = { bytes: limits.maxUnpackedBytes, entries: limits.maxEntries };
    await this.#exportTree(repo, sha, dest, budget, o, 0);
  }

  async #exportTree(
    repo: string,
    sha: string,
    dest: string,
    budget: { bytes: number; entries: number },
    o: FetchOptions & { url: string | null; appId: string },
    depth: number,
  ): Promise<void> {
    const objectEnv = depth === 0 ? (o.objectEnv ?? {}) : {};
    const gitlinks = await checkTree(repo, sha, budget, objectEnv);
    await mkdir(dest, { recursive: true });
    const tmp = await mkdtemp(join(dirname(dest), '.index-'));
    try {
      const env = { ...objectEnv, GIT_INDEX_FILE: join(tmp, 'index') };
      await git(['--git-dir', repo, 'read-tree', sha], { env });
      await git(['--git-dir', repo, '--work-tree', dest, 'checkout-index', '--all', '--force'], { env });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    if (gitlinks.size === 0 || !existsSync(join(dest, '.gitmodules'))) return;
    if (depth >= MAX_SUBMODULE_DEPTH) {
      o.say?.(`       submodules nested deeper than ${MAX_SUBMODULE_DEPTH} levels are not fetched`);
      return;
    }
    const modules = await readGitmodules(join(dest, '.gitmodules'));
    for (const m of modules) {
      const commit = gitlinks.get(m.path);
      if (!commit) continue; // declared but not in the tree
      if (!o.url && (m.url.startsWith('./') || m.url.startsWith('../')))
        throw new MinipaasError(
          'MINIPAAS_ERR_GIT',
          `submodule ${m.path} has a relative URL and the app has no repository URL`,
        );
      const url = resolveSubmoduleUrl(o.url ?? '', m.url);
      const sameOrigin = o.url !== null && originOf(url) === originOf(o.url);
      const dir = join(
        this.#root,
        `${o.appId}.modules`,
        `${createHash('sha256').update(url).digest('hex').slice(0, 16)}.git`,
      );
      o.say?.(`       submodule ${m.path} (${redactUrl(url)} ${commit.slice(0, 7)})`);
      await this.#fetchInto(dir, url, commit, {
        ...o,
        credential: sameOrigin ? o.credential : null,
        say: () => undefined,
      });
      await this.#exportTree(dir, commit, join(dest, m.path), budget, { ...o, url }, depth + 1);
    }
  }
}

/**
 * Checks every entry of commit `sha`'s tree against the budget (bytes and entries, shared with its
 * submodules) and refuses links that are absolute or leave the tree. Returns the gitlinks (path → commit).
 */
async function checkTree(
  repo: string,
  sha: string,
  budget: { bytes: number; entries: number },
  env: Record<string, string>,
): Promise<Map<string, string>> {
  const out = await git(['--git-dir', repo, 'ls-tree', '-r', '-z', '-l', '--full-tree', sha], {
    env,
    maxBuffer: 256 * 1024 * 1024,
  });
  const gitlinks = new Map<string, string>();
  const links: Array<{ path: string; object: string }> = [];
  for (const rec of out.split('\0')) {
    if (rec === '') continue;
    const tab = rec.indexOf('\t');
    const [mode, type, object, size] = rec.slice(0, tab).split(/\s+/) as [string, string, string, string];
    const path = rec.slice(tab + 1);
    budget.entries -= 1;
    if (budget.entries < 0)
      throw new MinipaasError(
        'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
        'the repository has more files than uploads.maxEntries allows',
      );
    if (type === 'commit') gitlinks.set(path, object);
    else if (mode === '120000') links.push({ path, object });
    else budget.bytes -= Number(size) || 0;
    if (budget.bytes < 0)
      throw new MinipaasError(
        'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
        'the repository is larger than uploads.maxUnpackedBytes allows',
      );
  }
  for (const l of links) {
    const target = await git(['--git-dir', repo, 'cat-file', 'blob', l.object], { env });
    const resolved = posix.normalize(posix.join(posix.dirname(l.path), target));
    if (target.startsWith('/') || resolved === '..' || resolved.startsWith('../'))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `the repository's link ${l.path} points outside the source tree`,
      );
  }
  return gitlinks;
}

/** `path` and `url` of every submodule a `.gitmodules` file declares. */
async function readGitmodules(file: string): Promise<Array<{ path: string; url: string }>> {
  const out = await git([
    'config',
    '--file',
    file,
    '--null',
    '--get-regexp',
    '^submodule\\..*\\.(path|url)$',
  ]).catch(() => '');
  const byName = new Map<string, { path?: string; url?: string }>();
  for (const rec of out.split('\0')) {
    const nl = rec.indexOf('\n');
    if (nl < 0) continue;
    const key = rec.slice(0, nl);
    const value = rec.slice(nl + 1);
    const m = /^submodule\.(.*)\.(path|url)$/.exec(key);
    if (!m) continue;
    const entry = byName.get(m[1] as string) ?? {};
    entry[m[2] as 'path' | 'url'] = value;
    byName.set(m[1] as string, entry);
  }
  const modules: Array<{ path: string; url: string }> = [];
  for (const e of byName.values()) if (e.path && e.url) modules.push({ path: e.path, url: e.url });
  return modules;
}

/** A submodule URL resolved against its parent's (`../lib.git` next to the parent repository). */
export function resolveSubmoduleUrl(parent: string, url: string): string {
  if (!url.startsWith('./') && !url.startsWith('../')) return checkGitUrl(url);
  const u = new URL(parent.replace(/\/+$/, ''));
  let path = u.pathname;
  for (const part of url.split('/')) {
    if (part === '..') path = path.slice(0, Math.max(0, path.lastIndexOf('/')));
    else if (part !== '.' && part !== '') path = `${path}/${part}`;
  }
  u.pathname = path;
  return checkGitUrl(u.toString());
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url.split(':')[0] ?? url;
  }
}
