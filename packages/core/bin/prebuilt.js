// Prebuilt JavaScript for the TypeScript sources of the MiniPaaS packages (docs/decisions/0006-prebuilt-js.md).
//
// `node packages/core/bin/prebuilt.js` (run by `npm install` through the root `prepare` script) strips the types
// of every `<packages>/*/src/**/*.ts` once, with Node's own `module.stripTypeScriptTypes`, into
// `<packages>/core/dist/prebuilt/`. The bins call `registerPrebuilt()` first: a load hook then hands Node that
// JavaScript for a `.ts` module whose source still has the hash recorded at build time, so a running platform
// never loads the TypeScript stripper (its WebAssembly costs ~17-27 MB of RSS in every process that loads it).
// It also bundles the few dependencies whose ESM build is hundreds of small modules (kysely: ~480 files, ~9 MiB
// of a process's memory as modules, ~0.5 MiB as one) into `<out>/vendor/`, with rolldown when it is installed;
// the hook resolves those bare names to the bundle while it was built from the installed version
// (docs/decisions/0018-vendor-bundles.md).
// The module keeps its `.ts` URL, so `import.meta.url` and every relative path stay what they are; an edited,
// new or unbuilt source is stripped by Node as before. Plain JavaScript: it must run before any type stripping.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import module from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The folder holding the packages (`packages/` here, `node_modules/@minipaas/` when installed). */
const PACKAGES = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = join(PACKAGES, 'core', 'dist', 'prebuilt');

/**
 * @typedef {object} PrebuiltOptions
 * @property {string} [packages] Folder whose `<pkg>/src/**.ts` files are served (default: this package's parent).
 * @property {string} [out] Folder of the prebuilt files (default: `<packages>/core/dist/prebuilt`).
 */

const TRAILER = '\n//# minipaas-prebuilt-sha256=';
const VENDOR_TRAILER = '\n//# minipaas-vendor=';

/**
 * Dependencies served from one bundled file. Only a bare name that nothing imports by subpath belongs here:
 * a subpath import would load a second copy of the package's classes next to the bundle's.
 */
export const VENDOR_BUNDLES = ['kysely'];

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

/** The prebuilt file of a source under <packages>/<pkg>/src, or null for any other file. */
function prebuiltPath(file, packages, out) {
  const rel = relative(packages, file);
  const parts = rel.split(sep);
  if (parts.length < 3 || parts[0] === '..' || parts[1] !== 'src' || !rel.endsWith('.ts')) return null;
  return join(out, `${rel.slice(0, -3)}.js`);
}

/** The prebuilt JavaScript of `file` when it was built from exactly this source, else null. */
function prebuiltFor(file, packages, outDir) {
  const out = prebuiltPath(file, packages, outDir);
  if (!out) return null;
  let js;
  try {
    js = readFileSync(out, 'utf8');
  } catch {
    return null; // not built
  }
  const at = js.lastIndexOf(TRAILER);
  if (at === -1) return null;
  let source;
  try {
    source = readFileSync(file, 'utf8');
  } catch {
    return null; // let Node report the missing module
  }
  return js.slice(at + TRAILER.length).trim() === sha256(source) ? js : null;
}

/**
 * Serves prebuilt JavaScript for the packages' TypeScript modules (no-op where `module.registerHooks` is
 * missing, before Node 22.15). Returns whether the hook is installed.
 * @param {PrebuiltOptions} [options]
 */
export function registerPrebuilt(options = {}) {
  if (typeof module.registerHooks !== 'function') return false;
  const packages = options.packages ?? PACKAGES;
  const out = options.out ?? (options.packages ? join(packages, 'core', 'dist', 'prebuilt') : OUT);
  const vendorDir = join(out, 'vendor');
  /** @type {Map<string, string | null>} bare name → bundle URL, or null when stale or not built */
  const vendor = new Map();
  module.registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      if (!VENDOR_BUNDLES.includes(specifier)) return resolved;
      let url = vendor.get(specifier);
      if (url === undefined) {
        url = freshBundle(vendorDir, specifier, resolved.url);
        vendor.set(specifier, url);
      }
      return url === null ? resolved : { url, format: 'module', shortCircuit: true };
    },
    load(url, context, nextLoad) {
      if (url.startsWith('file:') && url.endsWith('.ts')) {
        const js = prebuiltFor(fileURLToPath(url), packages, out);
        if (js !== null) return { format: 'module', source: js, shortCircuit: true };
      }
      return nextLoad(url, context);
    },
  });
  return true;
}

/** `name@version` of the package whose entry file is `entryUrl` (its nearest package.json named `name`). */
function installedVersion(name, entryUrl) {
  if (!entryUrl.startsWith('file:')) return null;
  let dir = dirname(fileURLToPath(entryUrl));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === name) return `${name}@${pkg.version}`;
    } catch {
      // no package.json here: go up
    }
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/** The URL of `<vendorDir>/<name>.mjs` when it was bundled from the installed version, else null. */
function freshBundle(vendorDir, name, entryUrl) {
  const file = join(vendorDir, `${name}.mjs`);
  let js;
  try {
    js = readFileSync(file, 'utf8');
  } catch {
    return null; // not bundled
  }
  const at = js.lastIndexOf(VENDOR_TRAILER);
  const built = at === -1 ? null : js.slice(at + VENDOR_TRAILER.length).trim();
  return built !== null && built === installedVersion(name, entryUrl) ? pathToFileURL(file).href : null;
}

/**
 * Bundles each of {@link VENDOR_BUNDLES} into `<out>/vendor/<name>.mjs` with rolldown (a dev dependency, through
 * vitest): none is written when rolldown is not installed, and the bins then load the packages as they are.
 * Returns the bundled names.
 * @param {PrebuiltOptions} [options]
 */
export async function buildVendorBundles(options = {}) {
  const outDir = options.out ?? OUT;
  let rolldown;
  try {
    rolldown = await import('rolldown');
  } catch {
    return [];
  }
  const done = [];
  for (const name of VENDOR_BUNDLES) {
    const entryUrl = import.meta.resolve(name);
    const version = installedVersion(name, entryUrl);
    if (!version) continue;
    const file = join(outDir, 'vendor', `${name}.mjs`);
    await rolldown.build({
      input: fileURLToPath(entryUrl),
      platform: 'node',
      logLevel: 'silent',
      output: { file, format: 'esm' },
    });
    writeFileSync(file, `${readFileSync(file, 'utf8')}${VENDOR_TRAILER}${version}\n`);
    done.push(version);
  }
  return done;
}

function* sources(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) yield p;
  }
}

/**
 * Strips the types of every package source into the prebuilt folder. Returns how many files were written.
 * @param {PrebuiltOptions} [options]
 */
export function buildPrebuilt(options = {}) {
  const packages = options.packages ?? PACKAGES;
  const outDir = options.out ?? (options.packages ? join(packages, 'core', 'dist', 'prebuilt') : OUT);
  let n = 0;
  for (const pkg of readdirSync(packages, { withFileTypes: true })) {
    const src = join(packages, pkg.name, 'src');
    if (!pkg.isDirectory()) continue;
    let files;
    try {
      files = [...sources(src)];
    } catch {
      continue; // no src folder
    }
    for (const file of files) {
      const source = readFileSync(file, 'utf8');
      // 'strip' replaces types by blanks: lines and columns stay those of the .ts file (stack traces match).
      const js = module.stripTypeScriptTypes(source, { mode: 'strip' });
      const out = prebuiltPath(file, packages, outDir);
      if (!out) continue;
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, `${js}${TRAILER}${sha256(source)}\n`);
      n++;
    }
  }
  return n;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (typeof module.stripTypeScriptTypes !== 'function') {
    process.stderr.write(`prebuilt: Node ${process.version} has no module.stripTypeScriptTypes; skipped\n`);
  } else {
    const n = buildPrebuilt();
    process.stdout.write(`prebuilt: ${n} TypeScript modules stripped into ${relative(process.cwd(), OUT)}\n`);
    const bundled = await buildVendorBundles();
    process.stdout.write(
      `prebuilt: ${bundled.length ? `bundled ${bundled.join(', ')}` : 'no dependency bundled (rolldown is not installed)'}\n`,
    );
  }
}
