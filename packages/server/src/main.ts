/**
 * `minipaasd`: starts the control plane on the configured store and the local node agent.
 * Exits non-zero with one readable line on bad configuration.
 */
import { rm, writeFile } from 'node:fs/promises';
import { ensurePrivateDir, homePaths, isMinipaasError, loadConfig } from '@minipaas/core';
import { lazyDockerRuntime } from '@minipaas/runtime-docker/light';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { createControlPlane } from './server.ts';

async function main(): Promise<void> {
  const config = await loadConfig();
  const paths = homePaths(config.home);
  ensurePrivateDir(paths.home, 0o700, 0o711);
  ensurePrivateDir(paths.run, 0o700);
  const log = pino({ level: config.logLevel, base: { component: 'minipaasd', pid: process.pid } });
  const driver = new ProcessDriver(new AgentClient(paths.agentSocket));
  // Builds run in a separate worker process (restarted when it dies), so a heavy build cannot take the API down.
  // The docker runtime (docs/docker.md) when the engine answers; minipaasd runs its supervision loop,
  // loading the driver (dockerode, ~70 MiB) only once a docker app exists. Builds happen in the worker.
  const docker = await lazyDockerRuntime(config, {
    supervise: true,
    onWarning: (msg, err) => log.warn({ err: (err as Error | undefined)?.message }, msg),
  });
  docker?.start();
  // The swarm runtime (docs/swarm.md) only when swarm.host is set: loaded on demand (dockerode). minipaasd
  // keeps Caddy in step with the swarm's tasks and runs the cron scheduler (ADR 0013).
  const swarm = config.swarm.host
    ? await (await import('@minipaas/runtime-swarm')).createSwarmRuntime(config, {
        cron: true,
        serveEdgeDns: true,
        onCronEvent: (e) => log.info({ cron: e }, `cron ${e.type} ${e.service}`),
        onWarning: (msg, err) => log.warn({ err: (err as Error | undefined)?.message }, msg),
      })
    : null;
  await swarm?.start();
  const cp = await createControlPlane({
    config,
    drivers: [driver, ...(docker ? [docker] : []), ...(swarm ? [swarm.driver] : [])],
    logger: log,
    buildWorker: 'process',
  });
  if (cp.createdAdminToken) {
    log.info(
      { file: paths.adminToken },
      'created the admin API token (shown once; saved to the token file, mode 0600)',
    );
    process.stderr.write(
      `\nAdmin API token (shown once, also saved to ${paths.adminToken}):\n  ${cp.createdAdminToken}\n\n`,
    );
  }
  const address = await cp.listen();
  await writeFile(paths.serverPid, `${process.pid}\n`);
  log.info({ address, store: cp.ctx.store.kind, home: config.home }, 'control plane listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping control plane (apps keep running under the agent)');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    swarm?.stop();
    try {
      await cp.close();
    } finally {
      await rm(paths.serverPid, { force: true });
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  const msg = isMinipaasError(err)
    ? err.message
    : err instanceof Error
      ? (err.stack ?? err.message)
      : String(err);
  process.stderr.write(`minipaasd: ${msg}\n`);
  process.exit(1);
});
