/**
 * `minipaas up` in the foreground: the platform supervisor. Starts (or adopts) the node agent, runs
 * minipaasd as a child and restarts it with backoff when it dies (apps keep running: the agent owns
 * them), and on SIGINT/SIGTERM stops minipaasd, then asks the agent to stop the apps and exit.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { homePaths, type MinipaasConfig } from '@minipaas/core';
import { CliError } from './cli-error.ts';
import { apiUrlFor } from './credentials.ts';
import { ManagedProcess } from './managed-process.ts';
import { colors, line, type Output } from './output.ts';
import {
  agentHealth,
  agentRequest,
  apiAnswers,
  apiReadiness,
  isAlive,
  packageBin,
  readPid,
  removeFile,
  sleep,
  waitFor,
} from './platform.ts';

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
    const res = await fetch(`${apiUrl}/`, { signal: AbortSignal.timeout(1500) });
    await res.arrayBuffer();
    return res.ok && (res.headers.get('content-type') ?? '').includes('text/html') ? `${apiUrl}/` : undefined;
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
      if (pid !== undefined && pid !== process.pid && isAlive(pid, 'minipaas')) {
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
  for (const dir of [paths.home, paths.logs, paths.run]) mkdirSync(dir, { recursive: true });

  if (await apiAnswers(info.apiUrl)) {
    throw new CliError(
      `something already answers at ${info.apiUrl} (a minipaasd started outside minipaas up?); stop it first or set MINIPAAS_API_PORT`,
    );
  }
  acquirePidFile(paths.supervisorPid);

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
    env,
    log,
    onCrashLoop,
  });

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

  /** Starts agent and server, waits until ready; -1 = running (wait for a stop request). */
  async function startAll(): Promise<number> {
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
    log('starting minipaasd');
    server.start();
    let warned = false;
    const started = Date.now();
    for (;;) {
      if (stopping) return 1;
      if (!server.running) return fail(`minipaasd exited at start (${server.lastExit ?? 'unknown'})`);
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

  async function shutdown(): Promise<void> {
    agent.detach();
    if (server.running) {
      log('stopping minipaasd');
      await server.stop(15_000);
    } else server.detach();
    if (agent.running || (await agentHealth(paths.agentSocket))) {
      log('stopping the apps and the node agent');
      await stopAgent();
    }
    log('MiniPaaS stopped');
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
