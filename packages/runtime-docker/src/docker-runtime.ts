/**
 * The docker runtime as minipaasd and the build worker create it from the platform config: a driver and
 * an image builder on the configured Engine API socket, or null when `docker.enabled` is `auto` and the
 * engine does not answer (`on` makes that an error; `off` never offers the runtime).
 */
import { join } from 'node:path';
import { homePaths, type MinipaasConfig, MinipaasError } from '@minipaas/core';
import Docker from 'dockerode';
import { DockerBuilder } from './docker-builder.ts';
import { DockerDriver } from './docker-driver.ts';
import { AgentRouteClient } from './route-client.ts';

export interface DockerRuntime {
  docker: Docker;
  driver: DockerDriver;
  builder: DockerBuilder;
}

/** Options of {@link createDockerRuntime}. */
export interface CreateDockerRuntimeOptions {
  /** Warnings of the driver's supervision loop. */
  onWarning?: (msg: string, err?: unknown) => void;
}

export async function createDockerRuntime(
  config: MinipaasConfig,
  opts: CreateDockerRuntimeOptions = {},
): Promise<DockerRuntime | null> {
  if (config.docker.enabled === 'off') return null;
  const docker = new Docker({ socketPath: config.docker.socket });
  const up = await docker.ping().then(
    () => true,
    () => false,
  );
  if (!up) {
    if (config.docker.enabled === 'on')
      throw new MinipaasError(
        'MINIPAAS_ERR_DOCKER_UNAVAILABLE',
        `docker.enabled is on but no Docker engine answers at ${config.docker.socket}`,
      );
    return null;
  }
  const paths = homePaths(config.home);
  const driver = new DockerDriver({
    docker,
    routes: new AgentRouteClient(paths.agentSocket),
    stateFile: join(paths.run, 'docker-state.json'),
    network: config.docker.network,
    stopGraceMs: config.apps.stopGraceMs,
    startTimeoutMs: config.apps.startTimeoutMs,
    sampleIntervalMs: config.resources.sampleIntervalMs,
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
  });
  const builder = new DockerBuilder({ docker, keepImages: config.retention.keepImages });
  return { docker, driver, builder };
}
