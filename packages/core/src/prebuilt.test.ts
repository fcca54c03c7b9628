/** The prebuilt JavaScript of the packages' sources (bin/prebuilt.js): served while fresh, never when stale. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPrebuilt, buildVendorBundles } from '../bin/prebuilt.js';

const PREBUILT = pathToFileURL(join(import.meta.dirname, '..', 'bin', 'prebuilt.js')).href;

describe('prebuilt JavaScript', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'mp-prebuilt-'));
  const packages = join(tmp, 'packages');
  const src = join(packages, 'demo', 'src');
  const built = join(packages, 'core', 'dist', 'prebuilt', 'demo', 'src', 'value.js');
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** Imports demo/src/main.ts in a fresh Node with the hook installed; prints its `out`. */
  const run = (nodeArgs: string[] = []): string =>
    execFileSync(
      process.execPath,
      [
        ...nodeArgs,
        '--input-type=module',
        '-e',
        `const { registerPrebuilt } = await import(${JSON.stringify(PREBUILT)});
         registerPrebuilt({ packages: ${JSON.stringify(packages)} });
         const m = await import(${JSON.stringify(pathToFileURL(join(src, 'main.ts')).href)});
         process.stdout.write(m.out);`,
      ],
      { encoding: 'utf8', env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' }, stdio: 'pipe' },
    );

  it('serves the built JavaScript of an unchanged source, without the TypeScript stripper', () => {
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'value.ts'), "export const value: string = 'from source';\n");
    writeFileSync(
      join(src, 'main.ts'),
      "import { value } from './value.ts';\n" +
        // the line of this statement in the stack: stripping keeps the .ts file's lines
        "export const out: string = value + ' at line ' + new Error().stack?.split('\\n')[1]?.match(/:(\\d+):\\d+\\)?$/)?.[1];\n",
    );
    writeFileSync(join(src, 'main.test.ts'), 'not even TypeScript');
    expect(buildPrebuilt({ packages })).toBe(2);
    // Mark the built file: what the hook serves is visibly the prebuilt one.
    writeFileSync(built, readFileSync(built, 'utf8').replace("'from source'", "'from prebuilt'"));
    // --jitless has no WebAssembly, so Node's TypeScript stripper cannot run: every module came prebuilt.
    expect(run(['--jitless'])).toBe('from prebuilt at line 2');
  });

  it('lets Node strip a source that changed since the build', () => {
    writeFileSync(join(src, 'value.ts'), "export const value: string = 'edited';\n");
    expect(run()).toBe('edited at line 2');
  });

  describe('vendor bundles', () => {
    const out = join(tmp, 'out');
    const bundle = join(out, 'vendor', 'kysely.mjs');
    /** In a fresh Node with the hook: where `kysely` resolves, and a query compiled by what it loads. */
    const probe = (): { url: string; sql: string } =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `const { registerPrebuilt } = await import(${JSON.stringify(PREBUILT)});
             registerPrebuilt({ out: ${JSON.stringify(out)} });
             const { Kysely, PostgresAdapter, DummyDriver, PostgresIntrospector, PostgresQueryCompiler, sql } = await import('kysely');
             const db = new Kysely({ dialect: {
               createAdapter: () => new PostgresAdapter(), createDriver: () => new DummyDriver(),
               createIntrospector: (d) => new PostgresIntrospector(d), createQueryCompiler: () => new PostgresQueryCompiler() } });
             const q = db.selectFrom('apps').select(['id', sql\`now()\`.as('t')]).where('name', '=', 'x').compile();
             process.stdout.write(JSON.stringify({ url: import.meta.resolve('kysely'), sql: q.sql }));`,
          ],
          { encoding: 'utf8', cwd: import.meta.dirname, stdio: 'pipe' },
        ),
      );

    it('loads kysely from one bundled file built from the installed version', async () => {
      const built = await buildVendorBundles({ out });
      expect(built).toEqual([expect.stringMatching(/^kysely@\d+\.\d+\.\d+/)]);
      const r = probe();
      expect(r.url).toBe(pathToFileURL(bundle).href);
      expect(r.sql).toBe('select "id", now() as "t" from "apps" where "name" = $1');
    });

    it('falls back to the installed package when the bundle is of another version', () => {
      const js = readFileSync(bundle, 'utf8');
      writeFileSync(bundle, js.replace(/minipaas-vendor=kysely@.*\n$/, 'minipaas-vendor=kysely@0.0.1\n'));
      const r = probe();
      expect(r.url).toMatch(/\/node_modules\/kysely\/dist\/index\.js$/);
      expect(r.sql).toBe('select "id", now() as "t" from "apps" where "name" = $1');
    });
  });
});
