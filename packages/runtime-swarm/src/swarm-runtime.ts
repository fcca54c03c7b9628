/**
 * The swarm runtime as minipaasd and the build worker create it from the platform config (`swarm.*`,
 * docs/swarm.md): the manager's Engine API over TLS (`tcp://`, client certificates in `swarm.tlsDir`) or a
 * unix socket, the private registry, the Caddy edge, and — in minipaasd only — the cron scheduler that
 * honours swarm-cronjob's labels on every service of the swarm (ADR 0013).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type MinipaasConfig, MinipaasError } from '@minipaas/core';
import { CERT_FILES, type CronEvent, CronScheduler, UpstreamDns } from '@minipaas/swarm';
import Docker from 'dockerode';
import { SwarmDriver } from './swarm-driver.ts';
import { SwarmEdge } from './swarm-edge.ts';

/** Options of {@link createSwarmRuntime}. */
export interface CreateSwarmRuntimeOptions {
  /** Run the cron scheduler (minipaasd; default false). */
  cron?: boolean;
  /** What the cron scheduler did (runs, skips, errors). */
  onCronEvent?: (e: CronEvent) => void;
  /** Warnings (an edge sync that failed). */
  onWarning?: (msg: string, err?: unknown) => void;
  /**
   * Serve the edge's SRV answers (`swarm.edgeDns`; minipaasd, default false). Other processes (the build
   * worker) name the same address in Caddy's config and leave the answers to minipaasd.
   */
  serveEdgeDns?: boolean;
}

export interface SwarmRuntime {
  docker: Docker;
  driver: SwarmDriver;
  scheduler: CronScheduler | undefined;
  /** Starts the edge sync loop and the scheduler. */
  start(): Promise<void>;
  stop(): void;
}

/** The Engine API client of `swarm.host`. */
export function swarmDocker(config: MinipaasConfig): Docker {
  const host = config.swarm.host;
  if (!host) throw new MinipaasError('MINIPAAS_ERR_NOT_AVAILABLE', 'swarm.host is not set');
  if (host.startsWith('unix://')) return new Docker({ socketPath: host.slice('unix://'.length) });
  const url = new URL(host.replace(/^tcp:/, 'https:'));
  const dir = config.swarm.tlsDir;
  if (!dir)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      'swarm.tlsDir is required for a tcp:// swarm.host (the client certificates of "minipaas certs client")',
    );
  const file = (name: string): Buffer => {
    const p = join(dir, name);
    if (!existsSync(p))
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `swarm.tlsDir has no ${name} (${p})`);
    return readFileSync(p);
  };
  return new Docker({
    host: url.hostname,
    port: Number(url.port || 2376),
    protocol: 'https',
    ca: file(CERT_FILES.ca),
    cert: file(CERT_FILES.clientCert),
    key: file(CERT_FILES.clientKey),
  });
}

/** The swarm runtime of `config`, or null when `swarm.host` is unset. */
export async function createSwarmRuntime(
  config: MinipaasConfig,
  opts: CreateSwarmRuntimeOptions = {},
): Promise<SwarmRuntime | null> {
  if (!config.swarm.host) return null;
  const docker = swarmDocker(config);
  const info = (await docker.info().catch((err: unknown) => {
    throw new MinipaasError(
      'MINIPAAS_ERR_DOCKER_UNAVAILABLE',
      `the swarm manager at ${config.swarm.host} does not answer: ${err instanceof Error ? err.message : String(err)}`,
    );
  })) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
  if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `the engine at ${config.swarm.host} is not a swarm manager (docker swarm init)`,
    );
  let edge: SwarmEdge | undefined;
  const dns = edgeDns(config.swarm.edgeDns, () =>
    edge?.requestSync((err) => opts.onWarning?.('edge sync failed', err)),
  );
  edge = new SwarmEdge({
    docker,
    admin: config.swarm.caddyAdmin,
    listen: config.swarm.listen,
    baseDomain: config.router.baseDomain,
    ...(dns ? { dns } : {}),
  });
  if (dns && opts.serveEdgeDns) {
    await dns.start().catch((err: unknown) => {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `cannot serve the swarm edge's DNS on ${config.swarm.edgeDns} (swarm.edgeDns): ${err instanceof Error ? err.message : String(err)}`,
      );
    });
  }
  const driver = new SwarmDriver({
    docker,
    // Images are built on the local engine (the docker runtime's builder) and pushed from there.
    pushEngine: new Docker({ socketPath: config.docker.socket }),
    ...(config.swarm.registry ? { registry: config.swarm.registry } : {}),
    ...(config.swarm.pushRegistry ? { pushRegistry: config.swarm.pushRegistry } : {}),
    network: config.swarm.network,
    constraints: config.swarm.constraints,
    stopGraceMs: config.apps.stopGraceMs,
    edge,
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
  });
  const scheduler = opts.cron
    ? new CronScheduler({ docker, ...(opts.onCronEvent ? { onEvent: opts.onCronEvent } : {}) })
    : undefined;
  return {
    docker,
    driver,
    scheduler,
    async start() {
      driver.start();
      await scheduler?.start();
    },
    stop() {
      driver.stop();
      scheduler?.stop();
      if (dns && opts.serveEdgeDns) void dns.close();
    },
  };
}

/** The edge's DNS server of `swarm.edgeDns` (`IP:PORT` or `off`); misses ask for a sync, at most every 500 ms. */
function edgeDns(setting: string, onMiss: () => void): UpstreamDns | undefined {
  if (setting === 'off') return undefined;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(setting);
  if (!m) return undefined;
  let last = 0;
  return new UpstreamDns({
    host: m[1] as string,
    port: Number(m[2]),
    onMiss: () => {
      if (Date.now() - last < 500) return;
      last = Date.now();
      onMiss();
    },
  });
}
