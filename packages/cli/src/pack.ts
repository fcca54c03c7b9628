/**
 * Packs an app directory into a gzipped tarball for `minipaas deploy`, honouring `.gitignore` files
 * at every level (and `.minipaasignore`, same syntax) with git's rules: patterns are relative to the
 * file's directory, later and deeper files win, `!pattern` re-includes, and nothing inside an
 * excluded directory can be re-included. `.git/` and `node_modules/` are always left out.
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { create as createTar } from 'tar';

const IGNORE_FILES = ['.gitignore', '.minipaasignore'];
const ALWAYS_EXCLUDED = new Set(['.git', 'node_modules']);

interface Matcher {
  /** Directory of the ignore file, relative to the root ('' for the root). */
  base: string;
  ig: Ignore;
}

const toPosix = (p: string): string => (sep === '/' ? p : p.split(sep).join('/'));

function loadMatcher(root: string, relDir: string): Matcher | undefined {
  let ig: Ignore | undefined;
  for (const name of IGNORE_FILES) {
    let text: string;
    try {
      text = readFileSync(join(root, relDir, name), 'utf8');
    } catch {
      continue;
    }
    ig ??= ignore();
    ig.add(text);
  }
  return ig ? { base: relDir, ig } : undefined;
}

function isIgnored(matchers: readonly Matcher[], relPath: string, isDir: boolean): boolean {
  let ignored = false;
  for (const m of matchers) {
    const sub = m.base ? relPath.slice(m.base.length + 1) : relPath;
    const r = m.ig.test(isDir ? `${sub}/` : sub);
    if (r.ignored) ignored = true;
    else if (r.unignored) ignored = false;
  }
  return ignored;
}

/** Lists what a deploy would upload: paths relative to `root` (posix), directories end with `/`. */
export function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (relDir: string, matchers: readonly Matcher[]): void => {
    const own = loadMatcher(root, relDir);
    const active = own ? [...matchers, own] : matchers;
    const entries = readdirSync(join(root, relDir), { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const e of entries) {
      const rel = relDir ? `${relDir}/${e.name}` : e.name;
      const isDir = e.isDirectory();
      if (isDir && ALWAYS_EXCLUDED.has(e.name)) continue;
      if (isIgnored(active, rel, isDir)) continue;
      if (isDir) {
        out.push(`${rel}/`);
        walk(rel, active);
      } else if (e.isFile() || e.isSymbolicLink()) {
        out.push(rel);
      }
    }
  };
  walk('', []);
  return out;
}

export interface PackResult {
  /** The gzipped tarball. */
  data: Buffer;
  /** Number of files (directories not counted). */
  files: number;
  /** Total size of the packed files before compression. */
  rawBytes: number;
}

/** Packs `root` into a gzipped tarball (see the module comment for what is left out). */
export async function packDirectory(root: string): Promise<PackResult> {
  const entries = listFiles(root);
  let files = 0;
  let rawBytes = 0;
  for (const e of entries) {
    if (e.endsWith('/')) continue;
    files++;
    rawBytes += lstatSync(join(root, e)).size;
  }
  // Nothing to pack (node-tar refuses an empty list): the caller reports "nothing to deploy".
  if (files === 0) return { data: Buffer.alloc(0), files, rawBytes };
  const chunks: Buffer[] = [];
  // Directories are listed explicitly (keeps empty ones) so recursion is off.
  const stream = createTar({ gzip: true, cwd: root, portable: true, noDirRecurse: true }, entries);
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return { data: Buffer.concat(chunks), files, rawBytes };
}

/** For messages: the path of `p` relative to the current directory. */
export function displayPath(p: string): string {
  const rel = toPosix(relative(process.cwd(), p));
  return rel.startsWith('..') ? p : rel || '.';
}
