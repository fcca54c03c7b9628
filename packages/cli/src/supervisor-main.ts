/**
 * The long-running `minipaas up` process (bin/minipaas-supervisor.js). `minipaas up` validates the
 * configuration, then replaces itself with this entry (execve: same pid, same terminal) or, with -d, starts
 * it in its own session. It imports what supervising needs and nothing else: not the CLI (commander and
 * every command) and not `@minipaas/core`'s index (zod and the API schemas), which a process that stays up
 * as long as the platform would otherwise hold for its lifetime (issue 7, docs/benchmarks.md).
 *
 * The configuration comes as JSON in MINIPAAS_SUPERVISOR_CONFIG, already validated by the CLI; the variable
 * is removed from the environment the platform's processes inherit. Without it (started by hand) the
 * configuration is loaded here, at the cost of loading zod.
 */
import type { MinipaasConfig } from '@minipaas/core';
import { CliError } from './cli-error.ts';
import { stdio } from './output.ts';
import { runSupervisor } from './supervisor.ts';

/** The environment variable that carries the validated configuration from `minipaas up`. */
export const SUPERVISOR_CONFIG_ENV = 'MINIPAAS_SUPERVISOR_CONFIG';
/** The argument that says the supervisor runs detached (`up -d`): no terminal, adjusted messages. */
export const DETACHED_ARG = '--daemonized';

async function configFrom(env: NodeJS.ProcessEnv): Promise<MinipaasConfig> {
  const json = env[SUPERVISOR_CONFIG_ENV];
  delete env[SUPERVISOR_CONFIG_ENV];
  if (json === undefined || json === '') {
    const { loadConfig } = await import('@minipaas/core');
    return loadConfig(env);
  }
  let config: MinipaasConfig;
  try {
    config = JSON.parse(json) as MinipaasConfig;
  } catch (err) {
    throw new CliError(`${SUPERVISOR_CONFIG_ENV} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof config?.home !== 'string' || config.home === '')
    throw new CliError(`${SUPERVISOR_CONFIG_ENV} holds no configuration (no home)`);
  return config;
}

/** Runs the supervisor until it is stopped; returns the process exit code. */
export async function supervisorMain(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  try {
    const config = await configFrom(env);
    const res = await runSupervisor({
      config,
      env: { ...env, MINIPAAS_HOME: config.home },
      out: stdio,
      detached: argv.slice(2).includes(DETACHED_ARG),
    });
    if (res.code !== 0) {
      stdio.err(`error: MiniPaaS stopped: ${res.failure ?? 'a component failed'}\n`);
      return res.code;
    }
    return 0;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    stdio.err(`error: ${msg.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error'}\n`);
    if (env.MINIPAAS_DEBUG && err instanceof Error && err.stack) stdio.err(`${err.stack}\n`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}
