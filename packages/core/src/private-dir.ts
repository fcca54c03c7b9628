import { chmodSync, mkdirSync, statSync } from 'node:fs';

/**
 * Creates `dir` (and missing parents) with `mode`, and tightens an existing one: permission bits
 * outside `allowed` (default `mode`) are removed when this process owns the directory. For
 * MINIPAAS_HOME pass `allowed` 0o711: apps running as other users may need to traverse it to their
 * release directories, but never to list or write it.
 */
export function ensurePrivateDir(dir: string, mode: number, allowed: number = mode): void {
  mkdirSync(dir, { recursive: true, mode });
  const st = statSync(dir);
  const perms = st.mode & 0o7777;
  if ((perms & ~allowed) === 0) return;
  if (process.getuid && st.uid !== process.getuid()) return; // not ours to change (chmod would fail)
  chmodSync(dir, perms & allowed);
}
