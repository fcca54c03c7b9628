/** `minipaas deploy [DIR] --app NAME [-m MSG] [-- command...]`. */
import type { Command } from 'commander';
import { type ApiClient, ApiError } from '../api-client.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { argsAfterDashDash, type DeployPlan, planDeploy } from '../deploy-plan.ts';
import { followDeployment } from '../follow-deployment.ts';
import { pack } from '../lazy-imports.ts';
import { bytes, colors, json, line, type Output } from '../output.ts';
import type { PackResult } from '../pack.ts';
import { buildFromGit, splitGitArg } from './git.ts';

interface DeployOptions {
  app?: string;
  project?: string;
  message?: string;
  json?: boolean;
  git?: string;
  ref?: string;
}

/** Creates the app when it does not exist yet; true when this call created it. */
async function ensureApp(
  client: ApiClient,
  plan: DeployPlan,
  project: string | undefined,
  p: Output,
): Promise<boolean> {
  if (await client.findApp(plan.app)) return false;
  const body: { name: string; project?: string } = { name: plan.app };
  if (project) body.project = project;
  try {
    await client.createApp(body);
  } catch (err) {
    // Another deploy created it between our lookup and our create: that is fine.
    if (err instanceof ApiError && err.code === 'MINIPAAS_ERR_APP_EXISTS') return false;
    throw err;
  }
  line(
    p,
    `Created app ${plan.app}${plan.kind === 'upload' && plan.appDerived ? ' (named after the directory; use --app to choose)' : ''}.`,
  );
  return true;
}

/** `deploy --app APP --git URL[#REF]`: sets the app's git source (creating the app) and builds it. */
async function deployGit(
  ctx: Context,
  cmd: Command,
  dirArg: string | undefined,
  opts: DeployOptions & { git: string },
): Promise<void> {
  if (dirArg !== undefined) throw new CliError('--git deploys a repository: give no directory or command');
  if (!opts.app) throw new CliError('--git needs --app NAME');
  const p: Output = opts.json ? { out: ctx.out.err, err: ctx.out.err, isTTY: false } : ctx.out;
  const source = splitGitArg(opts.git, opts.ref);
  const client = await clientFor(cmd, ctx);
  const exists = await client.findApp(opts.app);
  if (exists)
    await client.request('PUT', `/api/v1/apps/${encodeURIComponent(opts.app)}/git`, { json: source });
  else {
    await client.createApp({
      name: opts.app,
      git: source,
      ...(opts.project ? { project: opts.project } : {}),
    });
    line(p, `Created app ${opts.app}.`);
  }
  const deployment = await buildFromGit(client, opts.app, opts.message ? { message: opts.message } : {}, p);
  if (opts.json) json(ctx.out, deployment);
  if (deployment.status !== 'running')
    throw new CliError(
      `deploy of ${opts.app} ${deployment.status}${deployment.error ? `: ${deployment.error}` : ''}`,
    );
}

export function registerDeploy(program: Command, ctx: Context): void {
  program
    .command('deploy')
    .description('deploy a directory (uploaded as a tarball honouring .gitignore) or a command')
    .argument('[dir]', 'app directory (default: .), or a command line (see below)')
    .argument('[command...]', 'after --: a command to run instead of detecting one')
    .option('-a, --app <name>', 'app to deploy to; created if missing (default: the directory name)')
    .option('--project <project>', 'project of a newly created app (default: default)')
    .option('-m, --message <text>', 'deployment message')
    .option('--json', 'print the final deployment as JSON (progress goes to stderr)')
    .option(
      '--git <url>',
      "deploy a git repository instead (URL or URL#REF); it becomes the app's git source",
    )
    .option('--ref <ref>', 'branch, tag or commit id of --git (default: main)')
    .addHelpText(
      'after',
      `
How the app runs: a Procfile (web: ...), else package.json's start script, else a static site (index.html),
or the command given after --. Files matched by .gitignore (at any level) and .minipaasignore are not
uploaded; .git/ and node_modules/ never are. A single argument that is not a directory but a file or a
quoted command line is deployed as a command (then --app is required). After --, arguments are quoted
for the shell while $NAME references such as $PORT stay live; they expand where the app runs.

Examples:
  $ minipaas deploy examples/hello-node --app hello
  $ minipaas deploy . -m "fix the header"
  $ minipaas deploy --app web -- python3 -m http.server '$PORT'
  $ minipaas deploy "./my-app --port \\$PORT" --app my-app
  $ minipaas deploy dist --app site --json
  $ minipaas deploy --app api --git https://github.com/acme/api.git#main`,
    )
    .action(async (dirArg: string | undefined, rest: string[], opts: DeployOptions, cmd: Command) => {
      if (opts.git !== undefined) return deployGit(ctx, cmd, dirArg, { ...opts, git: opts.git });
      const operands = dirArg === undefined ? [] : [dirArg, ...rest];
      const plan = planDeploy({
        operands,
        dashArgs: argsAfterDashDash(ctx.argv, operands),
        app: opts.app,
        cwd: process.cwd(),
      });
      // Progress goes to stderr with --json so stdout holds only the JSON document.
      const p: Output = opts.json ? { out: ctx.out.err, err: ctx.out.err, isTTY: false } : ctx.out;
      const c = colors(p.isTTY);
      // Pack before anything is created: a directory with nothing to deploy fails here, app untouched.
      let packed: PackResult = { data: Buffer.alloc(0), files: 0, rawBytes: 0 };
      if (plan.kind === 'upload') {
        const t0 = Date.now();
        const { displayPath, packDirectory } = await pack();
        packed = await packDirectory(plan.dir);
        if (packed.files === 0)
          throw new CliError(`nothing to deploy: ${displayPath(plan.dir)} has no files (after .gitignore)`);
        line(
          p,
          `Packing ${displayPath(plan.dir)}: ${packed.files} files, ${bytes(packed.rawBytes)} (${bytes(packed.data.length)} gzipped) in ${Date.now() - t0} ms`,
        );
      }
      const client = await clientFor(cmd, ctx);
      const created = await ensureApp(client, plan, opts.project, p);

      let started: Awaited<ReturnType<ApiClient['deployCommand']>>;
      try {
        if (plan.kind === 'command') {
          line(p, `Deploying command to ${c.bold(plan.app)}: ${plan.command}`);
          started = await client.deployCommand(plan.app, {
            command: plan.command,
            ...(opts.message ? { message: opts.message } : {}),
          });
        } else {
          p.out(`Uploading to ${client.url} (app ${c.bold(plan.app)}) ... `);
          const t1 = Date.now();
          try {
            started = await client.deployTarball(plan.app, packed.data, {
              ...(opts.message ? { message: opts.message } : {}),
              ...(plan.command ? { command: plan.command } : {}),
            });
          } catch (err) {
            p.out('failed\n');
            throw err;
          }
          p.out(`done (${((Date.now() - t1) / 1000).toFixed(1)}s)\n`);
        }
      } catch (err) {
        // A refused deploy (4xx: nothing to run, archive too large...) leaves no app behind that this
        // command created for it.
        if (created && err instanceof ApiError && err.status < 500) await client.deleteApp(plan.app);
        throw err;
      }
      line(
        p,
        `Deployment ${started.id}${started.release ? ` (release v${started.release})` : ''}: ${started.status}`,
      );

      const { deployment, printed } = await followDeployment(client, started, p);
      if (opts.json) json(ctx.out, deployment);
      if (deployment.status !== 'running') {
        if (printed === 0 && deployment.log?.length) {
          ctx.out.err('last lines of the deploy log:\n');
          for (const l of deployment.log.slice(-20)) ctx.out.err(`  ${l}\n`);
        }
        throw new CliError(
          `deploy of ${plan.app} ${deployment.status}${deployment.error ? `: ${deployment.error}` : ''}`,
        );
      }
      const app = await client.getApp(plan.app);
      line(
        p,
        c.green(
          `${c.bold(app.name)} deployed${deployment.release ? ` (release v${deployment.release})` : ''}.`,
        ),
      );
      line(p, `  URL:       ${app.url}`);
      line(p, `  Path URL:  ${app.pathUrl}`);
      line(p, `  Logs:      minipaas logs ${app.name} -f`);
    });
}
