/** `minipaas up [-d]` and `minipaas down`. */
import { spawn } from 'node:child_process';
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { homePaths } from '@minipaas/core/paths';
import { embeddedPostgres } from '@minipaas/postgres';
import { type Command, Option } from 'commander';
import { CliError } from '../cli-error.ts';
import type { Context } from '../context.ts';
import { loadConfig } from '../lazy-imports.ts';
import { line } from '../output.ts';
import { apiReadiness, isAlive, readPid, SUPERVISOR_BIN, tailFile, waitFor } from '../platform.ts';
import {
  dashboardUrl,
  ensureHomeDirs,
  platformInfo,
  printInfo,
  runSupervisor,
  SMALL_HEAP_ARGS,
} from '../supervisor.ts';
import { DETACHED_ARG, SUPERVISOR_CONFIG_ENV } from '../supervisor-main.ts';
import { BIN, isOurProcess, stopLeftovers, stopProcess } from '../teardown.ts';

interface UpOptions {
  detach?: boolean;
  timeout: string;
  daemonized?: boolean;
}

export function registerUp(program: Command, ctx: Context): void {
  program
    .command('up')
    .description(
      'start MiniPaaS: the embedded PostgreSQL server, the node agent, the control plane (minipaasd) and the router',
    )
    .option('-d, --detach', 'run in the background and return once the platform is ready')
    .option('--timeout <seconds>', 'with -d: how long to wait for the platform to become ready', '30')
    .addOption(new Option('--daemonized').hideHelp())
    .addHelpText(
      'after',
      `
The first start creates a PostgreSQL cluster in $MINIPAAS_HOME/postgres (server log in
$MINIPAAS_HOME/logs/postgres.log; as root it runs as the system user postgres.user, default minipaas-pg).
With DATABASE_URL set, that server is used instead and no embedded server is started.
In the foreground, Ctrl-C (or SIGTERM) stops the control plane, then the apps and the agent, then
PostgreSQL. With -d the supervisor runs in its own session and logs to $MINIPAAS_HOME/logs/minipaas.log.
If minipaasd or PostgreSQL crashes it is restarted with backoff; apps keep running (the agent owns them).

Examples:
  $ minipaas up                  # foreground
  $ minipaas up -d               # background; stop with: minipaas down
  $ MINIPAAS_HOME=/tmp/mp MINIPAAS_API_PORT=7171 MINIPAAS_ROUTER_PORT=8181 minipaas up -d`,
    )
    .action(async (opts: UpOptions) => {
      const config = await loadConfig(ctx.env);
      const paths = homePaths(config.home);
      const info = platformInfo(config);
      const pid = readPid(paths.supervisorPid);
      if (!opts.daemonized && pid !== undefined && isOurProcess(pid, BIN.supervisor, config.home)) {
        line(ctx.out, `MiniPaaS is already running (supervisor pid ${pid}).`);
        if ((await apiReadiness(info.apiUrl)).ready) {
          info.dashboardUrl = await dashboardUrl(info.apiUrl);
          printInfo(ctx.out, info, 'detached');
        }
        return;
      }
      // The supervisor runs as its own small program, handed the validated configuration: this process
      // (commander, every command, zod) does not stay in memory for as long as the platform runs.
      const supervisorEnv = {
        ...ctx.env,
        MINIPAAS_HOME: config.home,
        [SUPERVISOR_CONFIG_ENV]: JSON.stringify(config),
      };
      const supervisorArgs = [
        ...process.execArgv,
        ...SMALL_HEAP_ARGS,
        SUPERVISOR_BIN,
        ...(opts.daemonized ? [DETACHED_ARG] : []),
      ];
      if (!opts.detach && process.execve) {
        // Same pid, terminal and process group: Ctrl-C and the exit code are the supervisor's.
        if (process.stdout.writableLength > 0) await new Promise((r) => process.stdout.once('drain', r));
        process.execve(process.execPath, [process.execPath, ...supervisorArgs], supervisorEnv);
      }
      if (!opts.detach) {
        // No execve (Windows): supervise in this process.
        const res = await runSupervisor({
          config,
          env: ctx.env,
          out: ctx.out,
          detached: Boolean(opts.daemonized),
        });
        if (res.code !== 0)
          throw new CliError(`MiniPaaS stopped: ${res.failure ?? 'a component failed'}`, res.code);
        return;
      }
      const timeoutMs = Number(opts.timeout) * 1000;
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
        throw new CliError('--timeout must be a number of seconds');
      ensureHomeDirs(paths);
      const logFile = join(paths.logs, 'minipaas.log');
      const fd = openSync(logFile, 'a', 0o600);
      const offset = statSync(logFile).size;
      writeSync(fd, `\n=== minipaas up -d at ${new Date().toISOString()} ===\n`);
      const child = spawn(
        process.execPath,
        [...process.execArgv, ...SMALL_HEAP_ARGS, SUPERVISOR_BIN, DETACHED_ARG],
        {
          detached: true,
          stdio: ['ignore', fd, fd],
          env: { ...supervisorEnv, NO_COLOR: '1' },
        },
      );
      closeSync(fd);
      let exit: string | undefined;
      child.on('exit', (code, signal) => {
        exit = signal ? `signal ${signal}` : `code ${code}`;
      });
      child.unref();
      line(ctx.out, `Starting MiniPaaS in the background (log: ${logFile}) ...`);
      let last = '';
      const ok = await waitFor(async () => {
        if (exit) return false;
        const r = await apiReadiness(info.apiUrl);
        last = r.detail;
        // Ready means OUR minipaasd answers: the supervisor is ours and minipaasd wrote its pid file
        // (a foreign server on the API port may answer /health/ready too).
        const server = readPid(paths.serverPid);
        return r.ready &&
          readPid(paths.supervisorPid) === child.pid &&
          server !== undefined &&
          isAlive(server)
          ? true
          : undefined;
      }, timeoutMs);
      if (ok) {
        info.dashboardUrl = await dashboardUrl(info.apiUrl);
        printInfo(ctx.out, info, 'detached');
        return;
      }
      let reason: string;
      if (exit) reason = `the supervisor exited (${exit})`;
      else {
        reason = `not ready within ${opts.timeout}s (${last}); stopped it — retry with a larger --timeout if this machine is slow`;
        try {
          if (child.pid) process.kill(child.pid, 'SIGTERM');
        } catch {
          // gone
        }
        await waitFor(() => (child.pid && isAlive(child.pid) && !exit ? undefined : true), 20_000);
      }
      const tail = tailFile(logFile, 25, offset);
      if (tail.length) {
        ctx.out.err(`last lines of ${logFile}:\n`);
        for (const l of tail) ctx.out.err(`  ${l}\n`);
      }
      throw new CliError(`MiniPaaS failed to start: ${reason}`);
    });

  program
    .command('down')
    .description('stop MiniPaaS: the control plane, then the apps and the node agent')
    .addHelpText(
      'after',
      `
Stops the supervisor started by "minipaas up -d" (or a foreground one in another terminal), which stops
minipaasd, asks the agent to stop every app cleanly, then stops the embedded PostgreSQL server (fast
shutdown). Whatever is left after that, or when the supervisor or the agent died, is stopped too: a
leftover minipaasd or agent (found by their pid files in $MINIPAAS_HOME/run and checked to be this
platform's), every app process the agent started (from its saved state, SIGTERM then SIGKILL after the
grace period), and a leftover PostgreSQL server of this home (its postmaster.pid). Stale pid files and
the socket are removed.

Examples:
  $ minipaas down`,
    )
    .action(async () => {
      const config = await loadConfig(ctx.env);
      const paths = homePaths(config.home);
      const say = (msg: string) => line(ctx.out, msg);
      const graceMs = config.apps.stopGraceMs + 45_000;
      let stopped = false;
      const pid = readPid(paths.supervisorPid);
      if (pid !== undefined && isOurProcess(pid, BIN.supervisor, config.home)) {
        say(`Stopping MiniPaaS (supervisor pid ${pid}) ...`);
        process.kill(pid, 'SIGTERM');
        if (!(await waitFor(() => (isAlive(pid) ? undefined : true), graceMs))) {
          say(`the supervisor (pid ${pid}) did not stop within ${graceMs / 1000}s; killing it`);
          if (!(await stopProcess(pid, 0))) throw new CliError(`cannot stop the supervisor (pid ${pid})`);
        }
        stopped = true;
      }
      // Whatever the supervisor did not stop, or everything when it was dead.
      const postgres = config.databaseUrl
        ? undefined
        : embeddedPostgres({ home: config.home, config: config.postgres });
      const left = await stopLeftovers({ paths, graceMs: config.apps.stopGraceMs, log: say, postgres });
      if (left.failed.length > 0)
        throw new CliError(`MiniPaaS did not stop completely: ${left.failed.join('; ')}`);
      say(stopped || left.stopped.length > 0 ? 'MiniPaaS stopped.' : 'MiniPaaS is not running.');
    });
}
