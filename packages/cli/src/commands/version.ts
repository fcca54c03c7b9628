/** `minipaas version`. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiClient } from '../api-client.ts';
import { type Context, targetFor } from '../context.ts';
import { json, line } from '../output.ts';

export const CLI_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export function registerVersion(program: Command, ctx: Context): void {
  program
    .command('version')
    .description('print the CLI version (and the server version when reachable)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas version\n  $ minipaas version --json')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      let server: string | undefined;
      let url: string | undefined;
      try {
        const t = await targetFor(cmd, ctx);
        url = t.url;
        server = (await new ApiClient({ url: t.url, token: undefined }).health(AbortSignal.timeout(1500)))
          .version;
      } catch {
        server = undefined;
      }
      if (opts.json)
        return json(ctx.out, {
          cli: CLI_VERSION,
          node: process.version,
          server: server ?? null,
          url: url ?? null,
        });
      line(ctx.out, `minipaas ${CLI_VERSION} (node ${process.version})`);
      if (server) line(ctx.out, `server ${server} at ${url}`);
    });
}
