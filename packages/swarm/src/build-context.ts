/** The files of a build context that go to the Docker engine: everything `.dockerignore` does not exclude. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import dockerignore from '@balena/dockerignore';

// The package is CommonJS (`module.exports = factory`) while its types declare a default export.
const ignore = ((dockerignore as unknown as { default?: typeof dockerignore }).default ??
  dockerignore) as unknown as typeof dockerignore.default;

/**
 * Relative paths (POSIX separators) of the files and symlinks under `dir` that `.dockerignore`
 * keeps; the Dockerfile and `.dockerignore` itself always go, as `docker build` sends them too.
 */
export function contextFiles(dir: string, dockerfile = 'Dockerfile'): string[] {
  const file = join(dir, '.dockerignore');
  const ig = ignore();
  if (existsSync(file))
    ig.add(
      readFileSync(file, 'utf8')
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#')),
    );
  const keep = new Set([dockerfile, '.dockerignore']);
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const abs = join(d, e.name);
      const rel = relative(dir, abs).split(sep).join('/');
      if (e.isDirectory()) {
        // A directory is walked even when ignored: a later `!pattern` may bring a file back.
        walk(abs);
        continue;
      }
      if (keep.has(rel) || !ig.ignores(rel)) out.push(rel);
    }
  };
  walk(dir);
  return out.sort();
}
