/**
 * `minipaas up` in the foreground: the platform supervisor. Starts (or adopts) the embedded PostgreSQL
 * server (unless DATABASE_URL selects another) and the node agent, runs minipaasd as a child, restarts
 * any of them with backoff when it dies (apps keep running: the agent owns them), and on SIGINT/SIGTERM
 * stops minipaasd, then asks the agent to stop the apps and exit, then stops PostgreSQL (fast shutdown).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HomePaths, MinipaasConfig } from '@minipaas/core';
// Not the package's index: that loads zod and every schema; this process stays up as long as the platform.
import { homePaths } from '@minipaas/core/paths';
import { ensurePrivateDir } from '@minipaas/core/private-dir';
import { type EmbeddedPostgres, embeddedPostgres } from '@minipaas/postgres';
import { CliError } from './cli-error.ts';
import { ManagedProcess } from './managed-process.ts';
import { colors, line, type Output } from './output.ts';
import {
  agentHealth,
  agentRequest,
  apiAnswers,
  apiReadiness,
  apiUrlFor,
  httpGet,
  listenerOf,
  packageBin,
  readPid,
  removeFile,
  sleep,
  tailFile,
  waitFor,
} from './platform.ts';
import { BIN, isOurProcess, stopBuildWorkers, stopOrphanedApps, stopProcess } from './teardown.ts';

export interface PlatformInfo {
  apiUrl: string;
  routerUrl: string;
  appUrlExample: string;
  tokenFile: string;
  home: string;
  dashboardUrl?: string | undefined;
}

export function platformInfo(config: MinipaasConfig): PlatformInfo {
  const port = config.router.port;
  const suffix = port === 80 ? '' : `:${port}`;
  return {
    apiUrl: apiUrlFor(config.api.host, config.api.port),
    routerUrl: `http://localhost${suffix}`,
    appUrlExample: `http://APP.${config.router.baseDomain}${suffix}/`,
    tokenFile: homePaths(config.home).adminToken,
    home: config.home,
  };
}

/** Probes whether the API serves a dashboard page at `/`. */
export async function dashboardUrl(apiUrl: string): Promise<string | undefined> {
  try {
    const res = await httpGet(`${apiUrl}/`, 1500);
    return res.status >= 200 && res.status < 300 && res.contentType.includes('text/html')
      ? `${apiUrl}/`
      : undefined;
  } catch {
    return undefined;
  }
}

/** Prints where everything is and how to log in. */
export function printInfo(o: Output, info: PlatformInfo, how: 'foreground' | 'detached'): void {
  const c = colors(o.isTTY);
  line(o, c.green(c.bold('MiniPaaS is up.')));
  line(o, `  API:          ${info.apiUrl}`);
  line(
    o,
    `  Router:       ${info.routerUrl}  (apps at ${info.appUrlExample} and ${info.routerUrl}/apps/APP/)`,
  );
  if (info.dashboardUrl) line(o, `  Dashboard:    ${info.dashboardUrl}`);
  line(o, `  Admin token:  ${info.tokenFile}`);
  line(o, '                the minipaas CLI on this machine uses it automatically; from elsewhere:');
  line(o, `                minipaas login --url ${info.apiUrl} --token "$(cat ${info.tokenFile})"`);
  line(o, `  Data:         ${info.home}`);
  line(o, `  Next:         minipaas deploy examples/hello-node --app hello`);
  line(o, how === 'foreground' ? '  Stop:         Ctrl-C' : '  Stop:         minipaas down');
}

/**
 * Node options of minipaasd and of the supervisor itself: a 1 MB young-generation semi-space instead of
 * V8's default (up to 16 MB each, grown under allocation and rarely given back). Not for the agent: its
 * router serves every request, and the flag cost it ~7% of its requests/s (issue 7, docs/benchmarks.md).
 */
export const SMALL_HEAP_ARGS: readonly string[] = ['--max-semi-space-size=1'];

/** MINIPAAS_HOME of a file in its run/ directory. */
const homeOf = (runFile: string): string => dirname(dirname(runFile));

/**
 * Creates MINIPAAS_HOME, run/ and logs/ private to the platform's user, and tightens them when an
 * older version created them world-readable. The home keeps o+x when present: apps running as other
 * users traverse it to their release directories.
 */
export function ensureHomeDirs(paths: HomePaths): void {
  ensurePrivateDir(paths.home, 0o700, 0o711);
  ensurePrivateDir(paths.run, 0o700);
  ensurePrivateDir(paths.logs, 0o750);
}

/** Creates the pid file exclusively; replaces a stale one. Throws when a live supervisor owns it. */
function acquirePidFile(file: string): void {
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = readPid(file);
      if (pid !== undefined && pid !== process.pid && isOurProcess(pid, BIN.supervisor, homeOf(file))) {
        throw new CliError(`MiniPaaS is already running (supervisor pid ${pid})`);
      }
      removeFile(file);
    }
  }
  throw new CliError(`cannot create ${file}`);
}

export interface SupervisorOptions {
  config: MinipaasConfig;
  env: NodeJS.ProcessEnv;
  out: Output;
  /** Started by `up -d` (no terminal): adjusts the messages. */
  detached: boolean;
}

/** Runs the platform until SIGINT/SIGTERM; resolves with the exit code. */
export async function runSupervisor(opts: SupervisorOptions): Promise<{ code: number; failure?: string }> {
  const { config, out } = opts;
  const paths = homePaths(config.home);
  const info = platformInfo(config);
  const c = colors(out.isTTY);
  const log = (msg: string) => line(out, `${c.dim(`[minipaas ${new Date().toISOString()}]`)} ${msg}`);
  ensureHomeDirs(paths);
  acquirePidFile(paths.supervisorPid);
  let adoptServer: number | undefined;
  try {
    adoptServer = await leftoverServer();
  } catch (err) {
    removeFile(paths.supervisorPid);
    throw err;
  }

  let resolveStop: (code: number) => void = () => {};
  const stopRequested = new Promise<number>((r) => {
    resolveStop = r;
  });
  let failure: string | undefined;
  const fail = (reason: string): number => {
    failure ??= reason;
    log(c.red(`${reason}; stopping`));
    return 1;
  };
  // A component that keeps dying right after start (bad config, port taken, broken install) needs the
  // operator, so the supervisor gives up instead of retrying forever — but never leaves apps running
  // without their agent (no router, no restarts, no way to stop them from the API): shutdown() stops
  // them from the agent's persisted state and the supervisor exits non-zero saying why.
  const onCrashLoop = (reason: string) => resolveStop(fail(reason));
  const env = { ...opts.env, MINIPAAS_HOME: config.home };
  const agent = new ManagedProcess({
    name: 'agent',
    bin: packageBin('@minipaas/agent', 'agent', 'minipaas-agent.js'),
    env,
    log,
    onCrashLoop,
  });
  const server = new ManagedProcess({
    name: 'minipaasd',
    bin: packageBin('@minipaas/server', 'server', 'minipaasd.js'),
    nodeArgs: SMALL_HEAP_ARGS,
    env,
    log,
    onCrashLoop,
  });
  // The embedded PostgreSQL server, unless DATABASE_URL selects another one.
  const database = config.databaseUrl
    ? undefined
    : embeddedPostgres({
        home: config.home,
        config: config.postgres,
        // Tests only: a cluster without fsync (fast initdb); never for a platform's data.
        unsafeNoSync: opts.env.MINIPAAS_PG_UNSAFE_NO_SYNC === '1',
        log,
      });
  let postgres: ManagedProcess | undefined;
  /** PostgreSQL starting (alongside the agent); resolves with why it failed, or undefined. */
  let postgresStarting: Promise<string | undefined> | undefined;

  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      log(`already stopping (${sig})`);
      return;
    }
    log(`${sig} received, stopping MiniPaaS`);
    resolveStop(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  let code: number;
  try {
    code = await Promise.race([startAll(), stopRequested]);
    if (code === -1) code = await stopRequested;
  } finally {
    stopping = true;
    await shutdown();
    removeFile(paths.supervisorPid);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
  return failure ? { code, failure } : { code };

  /** Starts PostgreSQL, agent and server, waits until ready; -1 = running (wait for a stop request). */
  async function startAll(): Promise<number> {
    // PostgreSQL and the agent start side by side. On a home whose cluster exists, minipaasd starts as soon
    // as the agent answers: its start-up (loading its modules) overlaps PostgreSQL's, and it retries the
    // connection until the server accepts it. A fresh home waits for PostgreSQL (initdb, the database).
    const early = adoptServer === undefined && database !== undefined && database.initialized();
    postgresStarting = database ? startPostgres(database) : undefined;
    const existing = await agentHealth(paths.agentSocket);
    if (existing) {
      log(`using the node agent already running (pid ${existing.pid})`);
      agent.adopt(existing.pid);
    } else {
      log('starting the node agent');
      agent.start();
      const up = await waitFor(
        async () => (await agentHealth(paths.agentSocket)) ?? (agent.running ? undefined : null),
        20_000,
      );
      if (!up) {
        return fail(
          agent.running
            ? 'the node agent did not answer on its socket within 20s'
            : `the node agent exited at start (${agent.lastExit ?? 'unknown'})`,
        );
      }
      agent.enableRestarts();
    }
    if (early && !stopping) {
      log('starting minipaasd');
      server.start();
    }
    const pgFailed = await postgresStarting;
    if (pgFailed) return fail(pgFailed);
    if (stopping) return 1;
    if (early) {
      // It gave up before PostgreSQL was ready (e.g. a cluster left without its database): once more.
      if (!server.running) {
        log('starting minipaasd again (it exited before PostgreSQL was ready)');
        server.start();
      }
    } else if (adoptServer !== undefined) {
      log(`using minipaasd already running (pid ${adoptServer}), left by an earlier supervisor`);
      server.adopt(adoptServer);
    } else {
      log('starting minipaasd');
      server.start();
    }
    let warned = false;
    const started = Date.now();
    for (;;) {
      if (stopping) return 1;
      if (!server.running) return fail(`minipaasd exited at start (${server.lastExit ?? 'gone'})`);
      const r = await apiReadiness(info.apiUrl);
      if (r.ready) break;
      if (!warned && Date.now() - started > 30_000) {
        log(c.yellow(`still waiting for ${info.apiUrl}/health/ready (${r.detail})`));
        warned = true;
      }
      await sleep(250);
    }
    server.enableRestarts();
    info.dashboardUrl = await dashboardUrl(info.apiUrl);
    printInfo(out, info, opts.detached ? 'detached' : 'foreground');
    return -1;
  }

  /**
   * Creates the cluster on first start, then starts (or adopts a leftover) postmaster as a managed child
   * and waits until it accepts connections. Returns why it failed, or undefined.
   */
  async function startPostgres(db: EmbeddedPostgres): Promise<string | undefined> {
    let proc: ManagedProcess;
    try {
      await db.init();
      if (stopping) return 'stopped while starting';
      const command = await db.serverCommand();
      proc = new ManagedProcess({
        name: 'postgres',
        command,
        env: command.env,
        logFile: db.logFile,
        stopSignal: 'SIGINT', // fast shutdown: disconnect clients, checkpoint, exit
        log,
        onCrashLoop,
      });
    } catch (err) {
      return `cannot start PostgreSQL: ${(err as Error).message}`;
    }
    postgres = proc;
    const leftover = db.postmasterPid();
    if (leftover !== undefined) {
      log(`using PostgreSQL already running (pid ${leftover}), left by an earlier supervisor`);
      proc.adopt(leftover);
    } else {
      log('starting PostgreSQL');
      proc.start();
    }
    try {
      await db.waitReady({ alive: () => proc.running && !stopping, timeoutMs: 60_000 });
      await db.ensureDatabase();
    } catch (err) {
      if (stopping) return 'stopped while starting';
      for (const l of tailFile(db.logFile, 5)) log(`  postgres.log: ${l}`);
      return `PostgreSQL did not start (${proc.lastExit ?? 'running'}): ${(err as Error).message}`;
    }
    proc.enableRestarts();
    return undefined;
  }

  /** Fast shutdown of PostgreSQL (SIGINT); immediate shutdown (SIGQUIT) when that takes over a minute. */
  async function stopPostgres(): Promise<void> {
    const proc = postgres;
    if (!proc?.running) return;
    log('stopping PostgreSQL');
    await proc.stop(60_000, false);
    if (!proc.running) return;
    log('PostgreSQL did not stop within 60s; immediate shutdown');
    proc.signal('SIGQUIT');
    await proc.waitExit(15_000);
  }

  async function shutdown(): Promise<void> {
    agent.detach();
    postgres?.detach();
    await postgresStarting; // sees `stopping` and returns; then it is stopped below
    if (server.running) {
      log('stopping minipaasd');
      await server.stop(15_000);
    } else server.detach();
    // Build workers whose minipaasd died before them (they drain their builds alone): builds go back to the queue.
    const worker = await stopBuildWorkers(paths, log);
    for (const f of worker.failed) log(c.red(`could not stop: ${f}`));
    if (agent.running || (await agentHealth(paths.agentSocket))) {
      log('stopping the apps and the node agent');
      await stopAgent();
    }
    // The agent may have died without stopping its apps (crash loop, kill -9): stop them from its state.
    const orphans = await stopOrphanedApps({ paths, graceMs: config.apps.stopGraceMs, log });
    for (const f of orphans.failed) log(c.red(`could not stop: ${f}`));
    // Last: apps with add-on databases use it until they stop.
    await stopPostgres();
    log('MiniPaaS stopped');
  }

  /**
   * A minipaasd left running by an earlier supervisor (killed with SIGKILL): adopted when it is ours
   * (pid file of this home, our command line and home) and serves the configured API port; stopped
   * when it is ours but serves elsewhere. Throws when something foreign answers on the API port.
   */
  async function leftoverServer(): Promise<number | undefined> {
    const pid = readPid(paths.serverPid);
    if (pid !== undefined && isOurProcess(pid, BIN.server, config.home)) {
      const listener = listenerOf(config.api.port);
      if ((await apiAnswers(info.apiUrl)) && (listener === undefined || listener.pid === pid)) return pid;
      log(`stopping minipaasd (pid ${pid}) left by an earlier supervisor: it does not serve ${info.apiUrl}`);
      if (!(await stopProcess(pid, 20_000))) throw new CliError(`cannot stop minipaasd (pid ${pid})`);
    }
    if (await apiAnswers(info.apiUrl)) {
      const who = listenerOf(config.api.port);
      throw new CliError(
        `something else answers at ${info.apiUrl}${who ? ` (pid ${who.pid}: ${who.command})` : ''}, not the minipaasd of ${config.home}; stop it, or set MINIPAAS_API_PORT to a free port`,
      );
    }
    return undefined;
  }

  async function stopAgent(): Promise<void> {
    const graceMs = config.apps.stopGraceMs + 15_000;
    try {
      await agentRequest(paths.agentSocket, 'POST', '/v1/shutdown', 5000);
    } catch {
      agent.signal('SIGTERM');
    }
    if (await agent.waitExit(graceMs)) return;
    if (agent.pid === undefined) {
      // adopted agent we lost track of: wait for the socket to go quiet
      await waitFor(async () => ((await agentHealth(paths.agentSocket)) ? undefined : true), graceMs);
      return;
    }
    log('the node agent did not exit; sending SIGTERM');
    await agent.stop(10_000);
  }
}
