import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

const ENTRY = new URL('./supervisor-main.ts', import.meta.url).href;

/** Every module URL a fresh Node resolves while importing `url` (static graph: nothing is run). */
function moduleGraph(url: string): Promise<string[]> {
  const script = `
    import module from 'node:module';
    const seen = new Set();
    module.registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.add(r.url); return r; } });
    await import(${JSON.stringify(url)});
    process.stdout.write(JSON.stringify([...seen]));
  `;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as string[]);
    });
  });
}

describe('the supervisor entry (bin/minipaas-supervisor.js)', () => {
  it('loads neither the CLI (commander, the commands) nor zod and the API schemas', async () => {
    const graph = await moduleGraph(ENTRY);
    expect(graph.some((u) => u.endsWith('/packages/cli/src/supervisor.ts'))).toBe(true);
    expect(graph.some((u) => u.endsWith('/packages/postgres/src/index.ts'))).toBe(true);
    const heavy = graph.filter((u) =>
      /\/node_modules\/(commander|zod|undici|yaml|tar)\/|\/packages\/cli\/src\/(main|commands\/)|\/packages\/core\/src\/(index|config|schemas)\.ts$/.test(
        u,
      ),
    );
    expect(heavy).toEqual([]);
  });

  it('its bin uses the prebuilt JavaScript like the other bins', async () => {
    const bin = await readFile(new URL('../bin/minipaas-supervisor.js', import.meta.url), 'utf8');
    expect(bin).toContain("import('@minipaas/core/prebuilt')");
    expect(bin).toContain("import('../src/supervisor-main.ts')");
  });
});
