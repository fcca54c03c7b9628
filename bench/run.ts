/**
 * `npm run bench [-- platform|queue|all] [-- extra args]`: runs the side-by-side benchmarks.
 * Each suite writes bench/results/<suite>.json and its section of docs/benchmarks.md.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const SUITES: Record<string, string[]> = {
  platform: ['bench/platform/run.ts'],
  queue: ['bench/queue/run.ts', '--write-docs'],
  docker: ['bench/docker/run.ts'],
};

const [which = 'all', ...rest] = process.argv.slice(2);
const names = which === 'all' ? Object.keys(SUITES) : [which];
for (const name of names) {
  const args = SUITES[name];
  if (!args) {
    process.stderr.write(
      `error: unknown benchmark suite "${name}" (choose ${Object.keys(SUITES).join(', ')} or all)\n`,
    );
    process.exit(2);
  }
  process.stdout.write(`=== bench ${name}\n`);
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [...args, ...rest], {
      cwd: join(import.meta.dirname, '..'),
      stdio: 'inherit',
    });
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) process.exit(code);
}
