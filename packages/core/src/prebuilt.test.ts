/** The prebuilt JavaScript of the packages' sources (bin/prebuilt.js): served while fresh, never when stale. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPrebuilt } from '../bin/prebuilt.js';

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
});
