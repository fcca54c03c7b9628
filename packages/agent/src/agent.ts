import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import {
  type AgentHealth,
  ensurePrivateDir,
  homePaths,
  type MinipaasConfig,
  MinipaasError,
  SecretBox,
} from '@minipaas/core';
import { type RunAs, resolveRunAs } from '@minipaas/runtime-process/run-as';
import pino, { type Logger } from 'pino';
import { handleApi } from './api-server.ts';
import { type Cgroups, createCgroups, defaultCgroupRoot } from './cgroup.ts';
import { ExternalRoutes } from './external-routes.ts';
import { LogStore } from './log-store.ts';
import { PortAllocator } from './port-allocator.ts';
import { createResourceLimiter, type ResourceLimiter } from './resource-limits.ts';
import { DEFAULT_RESTART_POLICY, type RestartPolicy } from './restart-policy.ts';
import { type RouterHandle, startRouter } from './router/router.ts';
import { Supervisor } from './supervisor.ts';

export const AGENT_VERSION: string = (() => {
  try {
    return (
      JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version;
  } catch {
    return '0.0.0';
  }
})();

/** Options of {@link startAgent}. */
export interface StartAgentOptions {
  config: MinipaasConfig;
  /** Parent logger (default: pino to stderr at `config.logLevel`). */
  logger?: Logger;
  /** Router bind override (tests pass `{ port: 0 }`); `false` runs no router. */
  router?: { host?: string; port?: number } | false;
  /** Restart/crash-loop/health timing overrides. */
  policy?: Partial<RestartPolicy>;
  /** Max wait for in-flight requests of old instances during a rollout (default 30 s). */
  drainTimeoutMs?: number;
  /** App user override (`root` or a user name); default `config.apps.user`. */
  appUser?: string;
  /** Re-run the specs persisted by a previous agent (default true). */
  restore?: boolean;
  /** Called after `POST /v1/shutdown` has stopped everything (the binary exits here). */
  onShutdown?: () => void;
  /**
   * Where instances are contained. Default: detected at start — a cgroup per instance under
   * {@link defaultCgroupRoot} when the agent is root and a hierarchy is writable, else process groups.
   * Tests pass their own root, or force `version: 'none'`.
   */
  cgroups?: Cgroups;
  /** Applies memory/CPU limits (default: cgroup v1 under the cgroup root when root, else unsupported). */
  limiter?: ResourceLimiter;
}

/** A running agent. */
export interface AgentHandle {
  socketPath: string;
  router: { host: string; port: number } | null;
  supervisor: Supervisor;
  logs: LogStore;
  runAs: RunAs | null;
  logger: Logger;
  /** Stops every app gracefully, closes the socket and router, removes socket and pid file. Idempotent. */
  close(): Promise<void>;
}

function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts the node agent: supervisor, router and the protocol server on the unix socket. */
export async function startAgent(options: StartAgentOptions): Promise<AgentHandle> {
  const { config } = options;
  const paths = homePaths(config.home);
  const logger =
    options.logger ?? pino({ level: config.logLevel, name: 'minipaas-agent' }, pino.destination(2));
  ensurePrivateDir(paths.home, 0o700, 0o711);
  ensurePrivateDir(paths.run, 0o700);
  ensurePrivateDir(paths.logs, 0o750);
  if (await socketInUse(paths.agentSocket)) {
    throw new MinipaasError(
      'MINIPAAS_ERR_CONFLICT',
      `another agent is already listening on ${paths.agentSocket}`,
    );
  }
  rmSync(paths.agentSocket, { force: true });

  const runAs = await resolveRunAs(options.appUser ?? config.apps.user);
  const policy: RestartPolicy = {
    ...DEFAULT_RESTART_POLICY,
    startTimeoutMs: config.apps.startTimeoutMs,
    ...options.policy,
  };
  const cgroups = options.cgroups ?? createCgroups({ root: defaultCgroupRoot(config.home) });
  logger.info({ cgroups: cgroups.version }, cgroups.description);
  const sweepCgroups = async (when: string): Promise<void> => {
    try {
      const killed = await cgroups.sweep();
      if (killed.length)
        logger.warn({ pids: killed }, `killed processes left in this agent's cgroups (${when})`);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, `cannot clean this agent's cgroups (${when})`);
    }
  };
  // Instances of a previous agent that died without stopping them (no instance exists yet).
  await sweepCgroups('left by a previous agent');
  const limiter = options.limiter ?? createResourceLimiter({ root: defaultCgroupRoot(config.home) });
  logger.info({ limits: limiter.mode }, limiter.description);
  limiter.sweep();
  const logs = new LogStore({
    dir: paths.logs,
    maxBytes: config.apps.logMaxBytes,
    files: config.apps.logFiles,
  });
  const supervisor = new Supervisor({
    home: config.home,
    logger,
    logs,
    ports: new PortAllocator(config.apps.portMin, config.apps.portMax),
    runAs,
    policy,
    stopGraceMs: config.apps.stopGraceMs,
    drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
    stateFile: paths.agentState,
    cgroups,
    limiter,
    sampleIntervalMs: config.resources.sampleIntervalMs,
    // Env vars (secrets among them) are sealed in the state file with the platform's master key.
    sealer: new SecretBox(config.home, config.secrets.masterKey),
  });
  // CPU/memory of every instance, every few seconds (the metrics history).
  const sampler = setInterval(() => supervisor.sampleAll(), config.resources.sampleIntervalMs);
  sampler.unref();

  // Routes of apps other runtimes run (docker containers), put by their drivers (ADR 0009).
  const externalRoutes = new ExternalRoutes();
  let router: RouterHandle | null = null;
  if (options.router !== false) {
    router = await startRouter({
      host: options.router?.host ?? config.router.host,
      port: options.router?.port ?? config.router.port,
      baseDomain: config.router.baseDomain,
      headersTimeoutMs: config.router.headersTimeoutMs,
      requestTimeoutMs: config.router.requestTimeoutMs,
      idleTimeoutMs: config.router.idleTimeoutMs,
      maxConnectionsPerClient: config.router.maxConnectionsPerClient,
      maxConnections: config.router.maxConnections,
      resolve: (app) => supervisor.routeTargets(app) ?? externalRoutes.targets(app),
      logger: logger.child({ component: 'router' }),
    });
  }

  const startedAt = new Date().toISOString();
  let closing: Promise<void> | null = null;
  const health = (): AgentHealth => ({
    ok: true,
    pid: process.pid,
    version: AGENT_VERSION,
    startedAt,
    router: router ? { host: router.host, port: router.port } : { host: '', port: 0 },
    apps: supervisor.appCount,
    instances: supervisor.instanceCount,
  });

  const api: Server = createServer((req, res) => {
    void handleApi(
      {
        supervisor,
        logs,
        logger,
        health,
        externalRoutes,
        shutdown: () => {
          void close().then(() => options.onShutdown?.());
        },
      },
      req,
      res,
    );
  });
  await new Promise<void>((resolve, reject) => {
    api.once('error', reject);
    api.listen(paths.agentSocket, () => {
      api.off('error', reject);
      resolve();
    });
  });
  chmodSync(paths.agentSocket, 0o600);
  writeFileSync(paths.agentPid, `${process.pid}\n`, { mode: 0o644 });

  const close = (): Promise<void> => {
    closing ??= (async () => {
      logger.info('agent stopping: stopping all apps');
      clearInterval(sampler);
      const apiClosed = new Promise<void>((r) => api.close(() => r()));
      api.closeIdleConnections();
      await supervisor.stopAll();
      await sweepCgroups('at shutdown');
      limiter.sweep();
      logs.flush();
      await router?.close();
      api.closeAllConnections();
      await apiClosed;
      rmSync(paths.agentSocket, { force: true });
      try {
        if (readFileSync(paths.agentPid, 'utf8').trim() === String(process.pid))
          rmSync(paths.agentPid, { force: true });
      } catch {
        // already gone
      }
      logger.info('agent stopped');
    })();
    return closing;
  };

  const restored = options.restore === false ? 0 : await supervisor.restore();
  logger.info(
    {
      socket: paths.agentSocket,
      router: router ? `${router.host}:${router.port}` : null,
      runAs: runAs?.user ?? null,
      restored,
    },
    'agent started',
  );
  return {
    socketPath: paths.agentSocket,
    router: router ? { host: router.host, port: router.port } : null,
    supervisor,
    logs,
    runAs,
    logger,
    close,
  };
}
