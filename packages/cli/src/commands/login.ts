/** `minipaas login`, `logout`, `whoami`. */
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { ApiClient } from '../api-client.ts';
import { CliError } from '../cli-error.ts';
import { type Context, targetFor } from '../context.ts';
import { credentialsPath, saveCredentials } from '../credentials.ts';
import { json, line } from '../output.ts';

async function promptToken(url: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return (await rl.question(`API token for ${url}: `)).trim();
  } finally {
    rl.close();
  }
}

export function registerLogin(program: Command, ctx: Context): void {
  program
    .command('login')
    .description('check an API token and save it (with the URL) for later commands')
    .option('--json', 'print the identity as JSON')
    .addHelpText(
      'after',
      `
The URL and token come from --url/--token, then MINIPAAS_URL/MINIPAAS_TOKEN, then the saved login,
then the local platform (its admin token file). The login is saved to ~/.config/minipaas/credentials.json
(mode 0600). On the machine that runs "minipaas up" no login is needed.

Examples:
  $ minipaas login                                        # local platform, admin token picked up
  $ minipaas login --url http://10.0.0.5:7070 --token mp_xxx
  $ MINIPAAS_TOKEN=mp_xxx minipaas login --url https://paas.example.com`,
    )
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const target = await targetFor(cmd, ctx);
      let token = target.token;
      if (!token && process.stdin.isTTY) token = await promptToken(target.url);
      if (!token) throw new CliError(`no API token for ${target.url}: pass --token or set MINIPAAS_TOKEN`);
      const client = new ApiClient({ url: target.url, token });
      const me = await client.whoami();
      const file = credentialsPath(ctx.env);
      saveCredentials(file, { url: target.url, token });
      if (opts.json) return json(ctx.out, { url: target.url, ...me, credentials: file });
      line(ctx.out, `Logged in to ${target.url} as ${me.token.name} (${me.token.role}). Saved to ${file}.`);
    });

  program
    .command('logout')
    .description('forget the saved login')
    .addHelpText('after', '\nExamples:\n  $ minipaas logout')
    .action(() => {
      const file = credentialsPath(ctx.env);
      rmSync(file, { force: true });
      line(ctx.out, `Removed ${file}.`);
    });

  program
    .command('whoami')
    .description('show which server and token the CLI uses')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas whoami\n  $ minipaas whoami --json')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const target = await targetFor(cmd, ctx);
      const me = await new ApiClient({ url: target.url, token: target.token }).whoami();
      if (opts.json)
        return json(ctx.out, {
          url: target.url,
          urlSource: target.urlSource,
          tokenSource: target.tokenSource,
          ...me,
        });
      line(
        ctx.out,
        `${me.token.name} (${me.token.role}) on ${target.url} — token from ${target.tokenSource}`,
      );
    });
}
