/**
 * Deploy from git (docs/git.md): `git APP` (show the source), `git:set APP URL[#REF]`, `git:unset`,
 * `git:build APP [--ref REF]`, and the helper `deploy --git` and `apps:create --git` use.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { DeploymentView } from '@minipaas/core';
import type { Command } from 'commander';
import type { ApiClient } from '../api-client.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { followDeployment } from '../follow-deployment.ts';
import { cell, colors, json, line, type Output, table } from '../output.ts';

/** An app's git source as the API shows it. */
export interface GitSourceView {
  url: string | null;
  ref: string;
  credential: 'token' | 'ssh-key' | null;
  sync: { intervalSeconds: number } | null;
  previews: boolean;
}

/** `URL#REF` → `{url, ref}` (ref `main` when absent). The server validates both. */
export function splitGitArg(value: string, ref?: string): { url: string; ref: string } {
  const hash = value.lastIndexOf('#');
  if (hash > 0 && !value.slice(hash).includes('/')) {
    if (ref) throw new CliError('give the ref once: URL#REF or --ref REF');
    return { url: value.slice(0, hash), ref: value.slice(hash + 1) };
  }
  return { url: value, ref: ref ?? 'main' };
}

interface CredentialOptions {
  tokenEnv?: string;
  sshKey?: string;
}

/** The credential options as API fields: a token read from an env var, a key read from a file. */
export function credentialFields(o: CredentialOptions): { token?: string; sshKey?: string } {
  const out: { token?: string; sshKey?: string } = {};
  if (o.tokenEnv) {
    const v = process.env[o.tokenEnv];
    if (!v) throw new CliError(`--token-env ${o.tokenEnv}: that environment variable is not set`);
    out.token = v;
  }
  if (o.sshKey) {
    try {
      out.sshKey = readFileSync(o.sshKey, 'utf8');
    } catch (err) {
      throw new CliError(`--ssh-key ${o.sshKey}: ${(err as Error).message}`);
    }
  }
  return out;
}

/** Builds the app's git source (its ref, or `ref`) and follows the deployment to its end. */
export async function buildFromGit(
  client: ApiClient,
  app: string,
  o: { ref?: string; message?: string },
  p: Output,
): Promise<DeploymentView> {
  line(p, `Fetching and building ${colors(p.isTTY).bold(app)} from git${o.ref ? ` (${o.ref})` : ''} ...`);
  const started = await client.request<DeploymentView>(
    'POST',
    `/api/v1/apps/${encodeURIComponent(app)}/git/builds`,
    {
      json: { ...(o.ref ? { ref: o.ref } : {}), ...(o.message ? { message: o.message } : {}) },
    },
  );
  line(p, `Deployment ${started.id} of ${started.message ?? 'the newest commit'}: ${started.status}`);
  const { deployment } = await followDeployment(client, started, p);
  return deployment;
}

/** Runs git in the current directory; returns its stdout or null when it fails. */
function gitHere(args: string[]): string | null {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return null;
  }
}

/** Single-quotes `s` for the shell git runs `credential.helper = !...` with. */
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function registerGit(program: Command, ctx: Context): void {
  program
    .command('git:remote')
    .description('print the git remote of an app, or add it to the repository here (git push deploys)')
    .argument('<app>', 'app name or id')
    .option('--add', 'add (or update) the remote in the git repository of the current directory')
    .option('-r, --remote <name>', 'name of the remote', 'minipaas')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The remote is http(s)://PLATFORM/git/APP.git; git authenticates with your API token, which --add hands
to git through a credential helper (this CLI), so the token is not written into .git/config.
Pushing the app's deploy branch (main, or the branch of its git source) deploys it; the push prints
the deploy log and fails when the deploy fails.

Examples:
  $ minipaas git:remote hello
  $ minipaas git:remote hello --add && git push minipaas main`,
    )
    .action(async (app: string, opts: { add?: boolean; remote: string; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const found = await client.getApp(app);
      const url = `${client.url}/git/${found.name}.git`;
      if (opts.add) {
        if (!/^[A-Za-z0-9._-]{1,100}$/.test(opts.remote))
          throw new CliError(`--remote "${opts.remote}" is not a valid remote name`);
        if (gitHere(['rev-parse', '--git-dir']) === null)
          throw new CliError('not in a git repository: run git init first, or cd into your app');
        const existing = gitHere(['remote', 'get-url', opts.remote]);
        if (existing === null) gitHere(['remote', 'add', opts.remote, url]);
        else gitHere(['remote', 'set-url', opts.remote, url]);
        const helper = `!${shq(process.execPath)} ${shq(process.argv[1] ?? 'minipaas')} git:credential`;
        gitHere(['config', '--replace-all', `credential.${url}.helper`, helper]);
        if (gitHere(['remote', 'get-url', opts.remote])?.trim() !== url)
          throw new CliError(`could not set the git remote ${opts.remote}`);
      }
      if (opts.json)
        return json(ctx.out, { app: found.name, remote: opts.remote, url, added: Boolean(opts.add) });
      if (opts.add)
        line(ctx.out, `Remote ${opts.remote} is ${url}. Deploy with: git push ${opts.remote} main`);
      else line(ctx.out, url);
    });

  program
    .command('git:credential', { hidden: true })
    .description('git credential helper: answers git with your API token (set up by git:remote --add)')
    .argument('[operation]', 'get, store or erase (git passes it)')
    .action(async (operation: string | undefined, _opts: unknown, c: Command) => {
      if (operation !== 'get') return; // store/erase: nothing is kept
      const client = await clientFor(c, ctx);
      if (!client.token) throw new CliError('no API token: run minipaas login');
      ctx.out.out(`username=minipaas\npassword=${client.token}\n`);
    });

  program
    .command('git')
    .description("show an app's git source (repository, ref, credential kind, auto-sync)")
    .argument('<app>', 'app name or id')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas git hello\n  $ minipaas git hello --json')
    .action(async (app: string, opts: { json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const src = await client.request<GitSourceView>('GET', `/api/v1/apps/${encodeURIComponent(app)}/git`);
      if (opts.json) return json(ctx.out, src);
      line(ctx.out, `=== ${app} git source`);
      line(ctx.out, `Repository:  ${src.url ?? '(none: deployed by git push)'}`);
      line(ctx.out, `Ref:         ${src.ref}`);
      line(ctx.out, `Credential:  ${cell(src.credential)}`);
      line(ctx.out, `Auto-sync:   ${src.sync ? `every ${src.sync.intervalSeconds}s` : 'off'}`);
      line(ctx.out, `Previews:    ${src.previews ? 'on' : 'off'}`);
    });

  program
    .command('git:set')
    .description("set an app's git repository and ref (and a credential for a private repository)")
    .argument('<app>', 'app name or id')
    .argument('<url>', 'repository URL, optionally with #REF (https://, ssh://, git://, git@host:path)')
    .option('--ref <ref>', 'branch, tag or commit id (default: main)')
    .option('--token-env <NAME>', 'read an HTTPS access token (TOKEN or USER:TOKEN) from this env var')
    .option('--ssh-key <file>', 'an SSH deploy key (private key file) for ssh:// or git@host: URLs')
    .option('--no-credential', 'remove a stored credential')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Credentials are stored sealed (AES-256-GCM) and never shown again; tokens are read from an environment
variable so they do not end up in your shell history.

Examples:
  $ minipaas git:set hello https://github.com/acme/hello.git#main
  $ GH_TOKEN=ghp_... minipaas git:set api https://github.com/acme/api.git --token-env GH_TOKEN
  $ minipaas git:set api git@github.com:acme/api.git --ssh-key ~/.ssh/api_deploy_key`,
    )
    .action(
      async (
        app: string,
        url: string,
        opts: CredentialOptions & { ref?: string; credential?: boolean; json?: boolean },
        c: Command,
      ) => {
        const client = await clientFor(c, ctx);
        const body = {
          ...splitGitArg(url, opts.ref),
          ...credentialFields(opts),
          ...(opts.credential === false ? { token: null } : {}),
        };
        const src = await client.request<GitSourceView>(
          'PUT',
          `/api/v1/apps/${encodeURIComponent(app)}/git`,
          {
            json: body,
          },
        );
        if (opts.json) return json(ctx.out, src);
        line(ctx.out, `${app} deploys ${src.url} ${src.ref}. Build it with: minipaas git:build ${app}`);
      },
    );

  program
    .command('git:sync')
    .description('auto-sync: deploy new commits of the git ref by polling it every SECONDS (or "off")')
    .argument('<app>', 'app name or id')
    .argument('<interval>', 'seconds between checks (5 to 86400), or off')
    .addHelpText('after', '\nExamples:\n  $ minipaas git:sync web 60\n  $ minipaas git:sync web off')
    .action(async (app: string, interval: string, _opts: unknown, c: Command) => {
      const seconds = interval === 'off' ? null : Number(interval);
      if (seconds !== null && !Number.isInteger(seconds))
        throw new CliError(`interval must be a whole number of seconds or off, not "${interval}"`);
      const client = await clientFor(c, ctx);
      await client.request('PATCH', `/api/v1/apps/${encodeURIComponent(app)}/git`, {
        json: { sync: seconds === null ? null : { interval: seconds } },
      });
      line(
        ctx.out,
        seconds === null
          ? `Auto-sync of ${app} is off.`
          : `${app} deploys new commits of its ref (checked every ${seconds}s).`,
      );
    });

  program
    .command('previews')
    .description("list an app's preview apps (one per branch or pull request)")
    .argument('<app>', 'app name or id')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
With previews on (previews:enable), pushing another branch than the deploy branch (git push, or a push
webhook) and opening a pull request (webhook) deploy APP-BRANCH with the app's config, at its own URL;
deleting the branch or closing the pull request destroys it.

Examples:
  $ minipaas previews:enable web
  $ minipaas previews web
  $ minipaas previews web --json`,
    )
    .action(async (app: string, opts: { json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const { previews } = await client.request<{
        previews: Array<{
          app: string;
          branch: string;
          pullRequest: number | null;
          status: string;
          url: string;
        }>;
      }>('GET', `/api/v1/apps/${encodeURIComponent(app)}/previews`);
      if (opts.json) return json(ctx.out, { previews });
      if (previews.length === 0) return line(ctx.out, `${app} has no previews.`);
      ctx.out.out(
        table(
          ['APP', 'BRANCH', 'PR', 'STATUS', 'URL'],
          previews.map((p) => [
            p.app,
            p.branch,
            p.pullRequest === null ? '-' : `#${p.pullRequest}`,
            p.status,
            p.url,
          ]),
        ),
      );
    });

  for (const [name, on] of [
    ['previews:enable', true],
    ['previews:disable', false],
  ] as const)
    program
      .command(name)
      .description(
        on
          ? 'deploy a preview app per branch and pull request'
          : 'stop creating preview apps (existing ones stay)',
      )
      .argument('<app>', 'app name or id')
      .addHelpText('after', `\nExamples:\n  $ minipaas ${name} web`)
      .action(async (app: string, _opts: unknown, c: Command) => {
        const client = await clientFor(c, ctx);
        await client.request('PATCH', `/api/v1/apps/${encodeURIComponent(app)}/git`, {
          json: { previews: on },
        });
        line(ctx.out, `Previews of ${app} are ${on ? 'on' : 'off'}.`);
      });

  program
    .command('git:unset')
    .description("remove an app's git source (its releases stay)")
    .argument('<app>', 'app name or id')
    .addHelpText('after', '\nExamples:\n  $ minipaas git:unset hello')
    .action(async (app: string, _opts: unknown, c: Command) => {
      const client = await clientFor(c, ctx);
      await client.request('DELETE', `/api/v1/apps/${encodeURIComponent(app)}/git`);
      line(ctx.out, `${app} has no git source any more.`);
    });

  program
    .command('git:build')
    .description("build and deploy the newest commit of the app's git ref (or --ref)")
    .argument('<app>', 'app name or id')
    .option('--ref <ref>', 'another branch, tag or commit id to build this once')
    .option('-m, --message <text>', 'deployment message (default: the commit subject)')
    .option('--json', 'print the final deployment as JSON (progress goes to stderr)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas git:build hello\n  $ minipaas git:build hello --ref v1.2.0\n  $ minipaas git:build hello --json',
    )
    .action(async (app: string, opts: { ref?: string; message?: string; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const p: Output = opts.json ? { out: ctx.out.err, err: ctx.out.err, isTTY: false } : ctx.out;
      const d = await buildFromGit(client, app, opts, p);
      if (opts.json) json(ctx.out, d);
      if (d.status !== 'running')
        throw new CliError(`deploy of ${app} ${d.status}${d.error ? `: ${d.error}` : ''}`);
    });
}
