/** `minipaas open APP`: prints the app URL and opens it in a browser when an opener exists. */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Command } from 'commander';
import { type Context, clientFor } from '../context.ts';
import { line } from '../output.ts';

/** Finds an executable on PATH without a shell. */
export function which(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

export function registerOpen(program: Command, ctx: Context): void {
  program
    .command('open')
    .description("print an app's URL and open it in the browser (when one can be opened)")
    .argument('<app>', 'app name or id')
    .option('--path', 'use the path-based URL (http://localhost:PORT/apps/APP/)')
    .option('--print', 'only print the URL')
    .addHelpText('after', '\nExamples:\n  $ minipaas open hello\n  $ minipaas open hello --path --print')
    .action(async (name: string, opts: { path?: boolean; print?: boolean }, cmd: Command) => {
      const client = await clientFor(cmd, ctx);
      const app = await client.getApp(name);
      const url = opts.path ? app.pathUrl : app.url;
      line(ctx.out, url);
      if (opts.print) return;
      const opener = which(process.platform === 'darwin' ? 'open' : 'xdg-open', ctx.env.PATH);
      if (!opener) return;
      try {
        const child = execFile(opener, [url], { timeout: 10_000 }, () => {});
        child.unref();
      } catch {
        // no browser: the URL is printed
      }
    });
}
