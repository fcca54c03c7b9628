/**
 * Path safety of the volume file API: every path argument is a relative path resolved inside one volume
 * directory. Refused with MINIPAAS_ERR_VOLUME_PATH (400) before anything is touched: absolute paths, `.` and
 * `..` segments (also their percent-encoded, double-encoded and Unicode-compatible forms), NUL and other
 * control characters, backslashes, empty segments, over-long names, and any existing symbolic link on the
 * way (links the app created itself included: the API never follows a link, in or out of the volume).
 * Opened files are checked once more through `/proc/self/fd` so that a link swapped in between the check
 * and the open is caught too.
 */

import type { Stats } from 'node:fs';
import { lstat, readlink, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { MinipaasError } from '@minipaas/core';

/** Longest path argument, in characters. */
export const MAX_PATH_CHARS = 4096;
/** Longest single name (Linux NAME_MAX). */
const MAX_NAME_BYTES = 255;
/** Percent-encodings of `.`, `/`, `\`, NUL and `%` itself (double encoding): never literal names here. */
const ENCODED = /%(2e|2f|5c|00|25)/i;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

function bad(what: string, why: string): never {
  const shown = what.slice(0, 80).replace(/[^\x20-\x7e]/g, '?');
  throw new MinipaasError('MINIPAAS_ERR_VOLUME_PATH', `path "${shown}" is refused: ${why}`);
}

/**
 * Splits a path argument into safe segments. `''`, `'.'` and `'/'` mean the volume's root only when
 * `allowRoot` (listing, upload target); a leading `/` is refused otherwise (paths are relative).
 */
export function pathSegments(input: unknown, opts: { allowRoot?: boolean } = {}): string[] {
  if (input === undefined || input === null) input = '';
  if (typeof input !== 'string') bad(String(input), 'it must be a string');
  const p = input as string;
  if (p === '' || p === '.' || p === '/') {
    if (opts.allowRoot) return [];
    bad(p, 'it names the volume root');
  }
  if (p.length > MAX_PATH_CHARS) bad(p, `longer than ${MAX_PATH_CHARS} characters`);
  if (CONTROL.test(p)) bad(p, 'it contains a NUL or control character');
  if (p.includes('\\')) bad(p, 'it contains a backslash');
  if (ENCODED.test(p)) bad(p, 'it contains a percent-encoded dot, slash, backslash, NUL or percent');
  if (p.startsWith('/')) bad(p, 'it is absolute (paths are relative to the volume)');
  const trimmed = p.endsWith('/') ? p.slice(0, -1) : p;
  const segments = trimmed.split('/');
  for (const s of segments) {
    if (s === '') bad(p, 'it has an empty segment (//)');
    const folded = s.normalize('NFKC');
    if (s === '.' || s === '..' || folded === '.' || folded === '..' || folded.includes('/'))
      bad(p, 'it leaves the volume (. or .. segment)');
    if (Buffer.byteLength(s) > MAX_NAME_BYTES) bad(p, `a name is longer than ${MAX_NAME_BYTES} bytes`);
  }
  return segments;
}

/** A file name given with an upload: one safe segment. */
export function fileName(input: unknown): string {
  const segs = pathSegments(input);
  if (segs.length !== 1) bad(String(input), 'a file name cannot contain /');
  return segs[0] as string;
}

/** The real path of the volume root (it must exist). */
export async function realRoot(root: string): Promise<string> {
  return realpath(root);
}

/** True when `p` is `root` or below it. */
export function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * Resolves `segments` under `root` (a real path), refusing a symbolic link at any existing component and a
 * non-directory in the middle. Returns the absolute path and the final component's stats (null when it
 * does not exist; then `mustExist` throws 404).
 */
export async function resolveInside(
  root: string,
  segments: string[],
  opts: { mustExist?: boolean; display?: string } = {},
): Promise<{ path: string; stat: Stats | null }> {
  const display = opts.display ?? segments.join('/');
  let cur = root;
  let st: Stats | null = await lstat(root);
  for (let i = 0; i < segments.length; i++) {
    if (st === null || !st.isDirectory()) {
      if (st === null) break;
      bad(display, `${segments.slice(0, i).join('/')} is not a directory`);
    }
    cur = join(cur, segments[i] as string);
    try {
      st = await lstat(cur);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      st = null;
      if (i < segments.length - 1) {
        // A missing parent: fine for mkdir -p, the rest cannot be links either.
        cur = join(cur, ...segments.slice(i + 1));
        break;
      }
    }
    if (st?.isSymbolicLink()) bad(display, `${segments.slice(0, i + 1).join('/')} is a symbolic link`);
  }
  if (st === null && opts.mustExist)
    throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `no such file or directory in the volume: ${display}`);
  return { path: cur, stat: st };
}

/** Throws unless the open file descriptor `fd` (of this process) is a file inside `root`. */
export async function assertFdInside(root: string, fd: number, display: string): Promise<void> {
  const real = await readlink(`/proc/self/fd/${fd}`);
  if (!isInside(root, real)) bad(display, 'it resolves outside the volume');
}
