/** `minipaas shell`: `$SHELL` with DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH of an environment. */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import type { Context } from '../context.ts';
import { swarm } from '../lazy-imports.ts';
import { json, line } from '../output.ts';

/** The environment directory of a toolkit command: --dir, else MINIPAAS_ENV_DIR, else the current directory. */
export function envDir(opts: { dir?: string }, ctx: Context): string {
  return opts.dir ?? ctx.env.MINIPAAS_ENV_DIR ?? process.cwd();
}

export function registerShell(program: Command, ctx: Context): void {
  program
    .command('shell')
    .description('start $SHELL with the DOCKER_* variables of a swarm environment')
    .option('-C, --dir <dir>', 'environment directory (default: $MINIPAAS_ENV_DIR or .)')
    .option('--print', 'print export lines instead of starting a shell (eval "$(minipaas shell --print)")')
    .option('--json', 'print the variables as JSON instead of starting a shell')
    .addHelpText(
      'after',
      `
The variables come from the docker section of minipaas.yaml: DOCKER_HOST, and with TLS
DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (the files of "minipaas certs client").

Examples:
  $ minipaas shell -C envs/prod
  $ eval "$(minipaas shell --print)" && docker service ls
  $ minipaas shell --json`,
    )
    .action(async (opts: { dir?: string; print?: boolean; json?: boolean }) => {
      const { dockerEnv, dockerProcessEnv, loadEnvironment } = await swarm();
      const env = loadEnvironment(envDir(opts, ctx));
      const vars = dockerEnv(env.docker);
      if (opts.json) return json(ctx.out, vars);
      if (opts.print) {
        for (const [k, v] of Object.entries(vars))
          line(ctx.out, `export ${k}='${v.replaceAll("'", `'\\''`)}'`);
        return;
      }
      const shell = ctx.env.SHELL || '/bin/sh';
      ctx.out.err(`Starting ${shell} for stack ${env.stack} (${vars.DOCKER_HOST}); exit to leave.\n`);
      const code = await new Promise<number>((res, rej) => {
        const child = spawn(shell, [], {
          stdio: 'inherit',
          env: {
            ...dockerProcessEnv(env.docker, ctx.env),
            MINIPAAS_ENV_DIR: env.dir,
            MINIPAAS_STACK: env.stack,
          },
        });
        child.on('error', (err) => rej(new CliError(`cannot start ${shell}: ${err.message}`)));
        child.on('exit', (c, sig) => res(c ?? (sig ? 128 : 1)));
      });
      if (code !== 0) throw new CliError(`${shell} exited with ${code}`, code);
    });
}
