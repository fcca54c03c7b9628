/** `minipaas login`, `logout`, `whoami`. */
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { ApiClient } from '../api-client.ts';
import { CliError } from '../cli-error.ts';
import { type Context, targetFor } from '../context.ts';
import { credentialsPath, readCredentials, saveCredentials } from '../credentials.ts';
import { json, line } from '../output.ts';
import {
  type CliToken,
  LOGIN_TOKEN_PREFIX,
  promptPassword,
  readPasswordStdin,
  tokenFromPassword,
} from '../password-login.ts';

async function promptLine(question: string): Promise<string> {
  if (!process.stdin.isTTY) return '';
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

export function registerLogin(program: Command, ctx: Context): void {
  program
    .command('login')
    .description('log in with an email and password (or check an API token) and save the login')
    .option('--email <email>', 'log in as this user (asked for on a terminal when no token is given)')
    .option('--password-stdin', 'read the password from stdin (scripts)')
    .option('--expires-in-days <n>', 'expiry of the token a password login creates', '90')
    .option('--json', 'print the identity as JSON')
    .addHelpText(
      'after',
      `
With an email and password, the CLI logs in like the browser, creates an API token for itself
("minipaas login on HOST", expiring after --expires-in-days) and saves that token; the password is
not stored. With a token (--token, MINIPAAS_TOKEN), it checks the token and saves it.
Without either, a terminal is asked for the email and password; on the machine that runs
"minipaas up" the local admin token is picked up and no login is needed.
The login is saved to ~/.config/minipaas/credentials.json (mode 0600).

Examples:
  $ minipaas login --url https://paas.example.com              # asks for email and password
  $ minipaas login --url https://paas.example.com --email ada@example.com
  $ echo "$PASSWORD" | minipaas login --email ada@example.com --password-stdin
  $ minipaas login --url http://10.0.0.5:7070 --token mp_xxx
  $ MINIPAAS_TOKEN=mp_xxx minipaas login --url https://paas.example.com`,
    )
    .action(
      async (
        opts: { email?: string; passwordStdin?: boolean; expiresInDays: string; json?: boolean },
        cmd: Command,
      ) => {
        const target = await targetFor(cmd, ctx);
        let token = target.token;
        let created: CliToken | undefined;
        const explicitToken = target.tokenSource === 'flag' || target.tokenSource === 'env';
        if (opts.email !== undefined || opts.passwordStdin || (!token && process.stdin.isTTY)) {
          if (explicitToken) throw new CliError('give either --token (MINIPAAS_TOKEN) or --email, not both');
          const days = Number(opts.expiresInDays);
          if (!Number.isInteger(days) || days < 1 || days > 3650)
            throw new CliError('--expires-in-days must be a whole number of days from 1 to 3650');
          const email = opts.email ?? (await promptLine(`Email for ${target.url}: `));
          if (!email) throw new CliError('no email given');
          const password = opts.passwordStdin
            ? await readPasswordStdin()
            : await promptPassword('Password: ');
          created = await tokenFromPassword({ url: target.url, email, password, expiresInDays: days });
          token = created.token;
        }
        if (!token)
          throw new CliError(
            `no login for ${target.url}: pass --email (with --password-stdin without a terminal) or --token`,
          );
        const client = new ApiClient({ url: target.url, token });
        const me = await client.whoami();
        const file = credentialsPath(ctx.env);
        saveCredentials(file, { url: target.url, token });
        if (opts.json)
          return json(ctx.out, {
            url: target.url,
            ...me,
            ...(created
              ? { createdToken: { id: created.id, name: created.name, expiresAt: created.expiresAt } }
              : {}),
            credentials: file,
          });
        const who = me.token ? `${me.token.name} (${me.token.role})` : 'the token';
        line(
          ctx.out,
          created
            ? `Logged in to ${target.url} as ${opts.email ?? who}: token "${created.name}" (${created.role}${
                created.expiresAt ? `, expires ${created.expiresAt.slice(0, 10)}` : ''
              }) saved to ${file}.`
            : `Logged in to ${target.url} as ${who}. Saved to ${file}.`,
        );
      },
    );

  program
    .command('logout')
    .description('forget the saved login and revoke its token')
    .option('--keep-token', 'only forget the saved login; the token stays valid')
    .addHelpText(
      'after',
      `
Revokes the saved token on the server when "minipaas login" created it, then removes
~/.config/minipaas/credentials.json. When the server cannot be reached the file is removed anyway
and the token stays valid until it expires or is revoked (minipaas tokens:revoke).

Examples:
  $ minipaas logout
  $ minipaas logout --keep-token`,
    )
    .action(async (opts: { keepToken?: boolean }) => {
      const file = credentialsPath(ctx.env);
      const saved = readCredentials(file);
      if (saved && !opts.keepToken) {
        try {
          const client = new ApiClient({ url: saved.url, token: saved.token });
          const me = await client.whoami();
          // Only a token that `minipaas login` created; one saved with --token may serve elsewhere too.
          if (me.token?.id && me.token.name.startsWith(LOGIN_TOKEN_PREFIX)) {
            await client.raw('DELETE', `/api/v1/tokens/${encodeURIComponent(me.token.id)}`);
            line(ctx.out, `Revoked token "${me.token.name}" on ${saved.url}.`);
          } else if (me.token) {
            line(ctx.out, `Kept token "${me.token.name}" (not created by minipaas login).`);
          }
        } catch (err) {
          line(ctx.out, `Could not revoke the saved token on ${saved.url}: ${(err as Error).message}`);
        }
      }
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
