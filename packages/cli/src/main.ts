/** The `minipaas` program: commander setup, global options, one-line errors. */
import { Command } from 'commander';
import { CliError } from './cli-error.ts';
import { registerAccess } from './commands/access.ts';
import { registerAddons } from './commands/addons.ts';
import { registerApps } from './commands/apps.ts';
import { registerBackups } from './commands/backups.ts';
import { registerBuilds } from './commands/builds.ts';
import { registerCerts } from './commands/certs.ts';
import { registerCode } from './commands/code.ts';
import { registerDeploy } from './commands/deploy.ts';
import { registerDockerConfig } from './commands/docker-config.ts';
import { registerEnv } from './commands/env.ts';
import { registerGit } from './commands/git.ts';
import { registerImages } from './commands/images.ts';
import { registerLogin } from './commands/login.ts';
import { registerLogs } from './commands/logs.ts';
import { registerNodes } from './commands/nodes.ts';
import { registerOpen } from './commands/open.ts';
import { registerProjects } from './commands/projects.ts';
import { registerReleases } from './commands/releases.ts';
import { registerResources } from './commands/resources.ts';
import { registerScale } from './commands/scale.ts';
import { registerSecret } from './commands/secret.ts';
import { registerShell } from './commands/shell.ts';
import { registerStatus } from './commands/status.ts';
import { registerToolkitDeploy } from './commands/toolkit-deploy.ts';
import { registerUp } from './commands/up.ts';
import { CLI_VERSION, registerVersion } from './commands/version.ts';
import { registerVolumes } from './commands/volumes.ts';
import { registerWebhooks } from './commands/webhooks.ts';
import type { Context } from './context.ts';
import { stdio } from './output.ts';

export function createProgram(ctx: Context): Command {
  const program = new Command('minipaas')
    .description('MiniPaaS: your own Heroku on one machine')
    .version(CLI_VERSION, '-V, --version', 'print the CLI version')
    .option('--url <url>', 'API URL (env MINIPAAS_URL; default: saved login, else the local platform)')
    .option(
      '--token <token>',
      'API token (env MINIPAAS_TOKEN; default: saved login, else the local admin token)',
    )
    .showSuggestionAfterError(false)
    .configureOutput({
      writeOut: (s) => ctx.out.out(s),
      writeErr: (s) => ctx.out.err(s),
    })
    .addHelpText(
      'after',
      `
Examples:
  $ minipaas up -d                                      # start the platform in the background
  $ minipaas deploy examples/hello-node --app hello     # deploy a directory
  $ minipaas deploy --app web -- python3 -m http.server '$PORT'
  $ minipaas ps hello && minipaas logs hello -f
  $ minipaas scale hello web=3
  $ minipaas down

Run "minipaas <command> --help" for a command's options and examples. Reference: docs/cli.md`,
    );
  registerUp(program, ctx);
  registerLogin(program, ctx);
  registerApps(program, ctx);
  registerDeploy(program, ctx);
  registerToolkitDeploy(program, ctx);
  registerStatus(program, ctx);
  registerLogs(program, ctx);
  registerScale(program, ctx);
  registerOpen(program, ctx);
  registerEnv(program, ctx);
  registerProjects(program, ctx);
  registerAddons(program, ctx);
  registerBackups(program, ctx);
  registerBuilds(program, ctx);
  registerReleases(program, ctx);
  registerCerts(program, ctx);
  registerCode(program, ctx);
  registerImages(program, ctx);
  registerNodes(program, ctx);
  registerSecret(program, ctx);
  registerDockerConfig(program, ctx);
  registerShell(program, ctx);
  registerVolumes(program, ctx);
  registerGit(program, ctx);
  registerWebhooks(program, ctx);
  registerResources(program, ctx);
  registerAccess(program, ctx);
  registerVersion(program, ctx);
  return program;
}

/** One line for any error; the stack only with MINIPAAS_DEBUG=1. */
export function errorLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return `error: ${msg.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error'}`;
}

export async function main(argv: readonly string[]): Promise<void> {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  const ctx: Context = { argv, env: process.env, out: stdio };
  let code = 0;
  try {
    await createProgram(ctx).parseAsync([...argv]);
  } catch (err) {
    stdio.err(`${errorLine(err)}\n`);
    if (process.env.MINIPAAS_DEBUG && err instanceof Error && err.stack) stdio.err(`${err.stack}\n`);
    code = err instanceof CliError ? err.exitCode : 1;
  }
  if (process.stdout.writableLength > 0) await new Promise((r) => process.stdout.once('drain', r));
  process.exit(code);
}
