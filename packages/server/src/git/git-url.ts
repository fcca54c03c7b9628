/**
 * Git repository URLs and refs as the API accepts them (docs/git.md): validated before anything is
 * stored or run, and redacted wherever they are shown. Only network transports are allowed (https, http,
 * ssh, git and scp-like `user@host:path`): `file://`, local paths and `ext::` would let an app's
 * developer read the control plane's own disk or run commands on it.
 */
import { MinipaasError } from '@minipaas/core';

/** An app's git source as given: repository URL, ref and optional credential. */
export interface GitSourceInput {
  url: string;
  ref: string;
  /** Auto-sync: poll the ref every this many seconds (`git: {..., sync: {interval}}`). */
  syncIntervalSeconds?: number;
}

/** Shortest auto-sync interval, in seconds. */
export const MIN_SYNC_INTERVAL = 5;
/** Longest auto-sync interval, in seconds (a day). */
export const MAX_SYNC_INTERVAL = 86_400;

/** `{interval: N}` → N, checked (a 400 otherwise). */
export function syncInterval(v: unknown): number {
  const n =
    v && typeof v === 'object' && !Array.isArray(v) ? (v as { interval?: unknown }).interval : undefined;
  if (
    typeof n !== 'number' ||
    !Number.isInteger(n) ||
    n < MIN_SYNC_INTERVAL ||
    n > MAX_SYNC_INTERVAL ||
    Object.keys(v as object).some((k) => k !== 'interval')
  )
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `sync must be {"interval": SECONDS} with ${MIN_SYNC_INTERVAL} to ${MAX_SYNC_INTERVAL} seconds`,
    );
  return n;
}

/** The transports git may use for any fetch the platform runs (GIT_ALLOW_PROTOCOL). */
export const ALLOWED_PROTOCOLS = 'https:http:ssh:git';

const SCP_LIKE = /^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:(?!\/\/)[A-Za-z0-9._~/-]+$/;
const MAX_URL = 2000;
const MAX_REF = 255;

/** Throws a 400 unless `url` is a network git URL the platform may fetch from. */
export function checkGitUrl(url: string): string {
  const bad = (why: string): never => {
    const shown = redactUrl(url);
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `git URL ${shown.length > 120 ? `${shown.slice(0, 120)}…` : shown} ${why}`,
    );
  };
  if (url.length === 0 || url.length > MAX_URL) bad(`must be 1 to ${MAX_URL} characters`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\s\u0000-\u001f\u007f]/.test(url)) bad('must not contain spaces or control characters');
  if (url.startsWith('-')) bad('must not start with "-"');
  if (SCP_LIKE.test(url) && !url.includes('::')) return url;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return bad(
      'is not a URL (use https://host/owner/repo.git, ssh://git@host/repo.git or git@host:repo.git)',
    );
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (!['https', 'http', 'ssh', 'git'].includes(scheme))
    bad(`uses ${scheme}://; only https, http, ssh and git are allowed`);
  if (!u.hostname) bad('has no host');
  if ((scheme === 'git' || scheme === 'ssh') && u.password)
    bad('must not carry a password; store a deploy key instead');
  return url;
}

/**
 * Throws a 400 unless `ref` is a branch, tag or commit name git accepts (the rules of
 * `git check-ref-format`, plus no leading `-` so it can never be read as an option).
 */
export function checkGitRef(ref: string): string {
  const bad = (why: string): never => {
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `git ref "${ref.slice(0, 80)}" ${why}`);
  };
  if (ref.length === 0 || ref.length > MAX_REF) bad(`must be 1 to ${MAX_REF} characters`);
  if (ref.startsWith('-') || ref.startsWith('/') || ref.endsWith('/') || ref.endsWith('.'))
    bad('must not start with "-" or "/" or end with "/" or "."');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u0020\u007f~^:?*[\\]/.test(ref) || ref.includes('..') || ref.includes('@{') || ref === '@')
    bad('is not a valid git ref name');
  if (ref.split('/').some((part) => part.startsWith('.') || part.endsWith('.lock') || part === ''))
    bad('is not a valid git ref name');
  return ref;
}

/** Whether `ref` names a commit by its full SHA-1 (then it is fetched by id, not by name). */
export function isCommitId(ref: string): boolean {
  return /^[0-9a-f]{40}$/.test(ref);
}

/**
 * `url` with any user info removed (`https://user:token@host/x` → `https://***@host/x`): what logs,
 * answers and the deploy log show.
 */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}

/**
 * A URL's embedded `user:password@` moved out: the clean URL is stored and `user:password` becomes the
 * source's HTTPS token (so it is sealed like one and never shown).
 */
export function splitUrlCredentials(url: string): { url: string; token: string | null } {
  if (!/^https?:\/\//i.test(url)) return { url, token: null };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url, token: null };
  }
  if (!u.username && !u.password) return { url, token: null };
  // `user:token` keeps the user (GitLab wants `oauth2:TOKEN`); a lone `token@` is the token.
  const token = u.password
    ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`
    : decodeURIComponent(u.username);
  u.username = '';
  u.password = '';
  return { url: u.toString(), token };
}

/** The branch name a ref names (`refs/heads/x` or `x`), or null for a tag or commit id. */
export function branchOf(ref: string): string | null {
  if (ref.startsWith('refs/heads/')) return ref.slice('refs/heads/'.length);
  if (ref.startsWith('refs/') || isCommitId(ref)) return null;
  return ref;
}

/**
 * The git source in any of the shapes the API accepts: `git: {url, ref}` (or a URL string with
 * `#ref`), seed 003's `repo_url` (+ `branch`), seed 002's `build_source: {type: 'git', repository,
 * branch}`. Returns null when the body names no git source; throws a 400 when it names a bad one.
 */
export function gitSourceFromBody(body: Record<string, unknown>): GitSourceInput | null {
  const shapes: GitSourceInput[] = [];
  const asString = (v: unknown, what: string): string => {
    if (typeof v !== 'string') throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${what} must be a string`);
    return v;
  };
  const git = body.git;
  if (typeof git === 'string') shapes.push(parseUrlWithRef(git));
  else if (git !== undefined && git !== null) {
    if (typeof git !== 'object' || Array.isArray(git))
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'git must be {url, ref} or a URL');
    const g = git as Record<string, unknown>;
    for (const k of Object.keys(g))
      if (!['url', 'ref', 'branch', 'sync'].includes(k))
        throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `git.${k.slice(0, 40)} is not a known setting`);
    const ref = g.ref ?? g.branch;
    shapes.push({
      url: asString(g.url, 'git.url'),
      ref: ref === undefined ? 'main' : asString(ref, 'git.ref'),
      ...(g.sync !== undefined && g.sync !== null ? { syncIntervalSeconds: syncInterval(g.sync) } : {}),
    });
  }
  if (body.repo_url !== undefined && body.repo_url !== null) {
    const ref = body.branch ?? body.ref;
    shapes.push({
      url: asString(body.repo_url, 'repo_url'),
      ref: ref === undefined ? 'main' : asString(ref, 'branch'),
    });
  }
  const bs = body.build_source;
  if (bs !== undefined && bs !== null) {
    if (typeof bs !== 'object' || Array.isArray(bs))
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'build_source must be an object');
    const b = bs as Record<string, unknown>;
    if (b.type === 'git') {
      const ref = b.branch ?? b.ref;
      shapes.push({
        url: asString(b.repository ?? b.url, 'build_source.repository'),
        ref: ref === undefined ? 'main' : asString(ref, 'build_source.branch'),
      });
    } else if (b.type !== undefined)
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `build_source.type ${JSON.stringify(String(b.type).slice(0, 40))} is not supported here (git is; upload with minipaas deploy)`,
      );
  }
  if (shapes.length === 0) return null;
  const [first] = shapes as [GitSourceInput, ...GitSourceInput[]];
  if (shapes.some((s) => s.url !== first.url || s.ref !== first.ref))
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      'git, repo_url and build_source name different repositories or refs; give one',
    );
  const sync = shapes.find((s) => s.syncIntervalSeconds !== undefined)?.syncIntervalSeconds;
  return {
    url: checkGitUrl(first.url),
    ref: checkGitRef(first.ref),
    ...(sync !== undefined ? { syncIntervalSeconds: sync } : {}),
  };
}

/** `URL#ref` (the CLI's `--git` form); without `#ref` the ref is `main`. */
export function parseUrlWithRef(value: string): GitSourceInput {
  const hash = value.lastIndexOf('#');
  const url = hash >= 0 ? value.slice(0, hash) : value;
  const ref = hash >= 0 ? value.slice(hash + 1) : 'main';
  return { url: checkGitUrl(url), ref: checkGitRef(ref) };
}
