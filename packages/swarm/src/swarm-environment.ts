/**
 * A MiniPaaS environment: a directory with `minipaas.yaml` (stack name, compose files, Docker endpoint,
 * registry, Caddy), the compose files it lists and the Caddy base config. This module reads it and
 * turns its Docker endpoint into `DOCKER_*` variables and a dockerode client.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';
import { parseDocument } from 'yaml';

/** The environment's file name. */
export const ENVIRONMENT_FILE = 'minipaas.yaml';

// dockerode (with its gRPC and protobuf dependencies) is loaded when a client is made, not when the CLI starts.
const requireDockerode = createRequire(import.meta.url);
const loadDocker = (): typeof Docker => requireDockerode('dockerode') as typeof Docker;

/** How to reach the Docker API of the swarm manager. */
export interface DockerEndpoint {
  /** `unix:///var/run/docker.sock` or `tcp://HOST:2376` (DOCKER_HOST). */
  host: string;
  /** Verify the daemon with `ca.pem` and authenticate with `cert.pem`/`key.pem` (DOCKER_TLS_VERIFY). */
  tls: boolean;
  /** Absolute directory of `ca.pem`, `cert.pem`, `key.pem` (DOCKER_CERT_PATH). */
  certPath?: string;
}

/** Caddy settings of an environment. */
export interface CaddySettings {
  /** Admin API base URL (default `http://127.0.0.1:2019`). */
  admin: string;
  /** Base config file (JSON) relative to the environment, default `caddy.json`. */
  config: string;
}

/** `minipaas.yaml`, resolved. */
export interface SwarmEnvironment {
  /** Absolute environment directory. */
  dir: string;
  /** Stack name (`docker stack deploy ... STACK`). */
  stack: string;
  /** Compose files in merge order, absolute. */
  composeFiles: string[];
  /** The compose file the `code` generators edit (the first one). */
  mainCompose: string;
  /** The override file `deploy build` writes image references to (the last one). */
  overrideCompose: string;
  docker: DockerEndpoint;
  /** Private registry host:port for `deploy build` (empty: images stay local). */
  registry: string;
  caddy: CaddySettings;
}

const STACK_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Reads and validates `DIR/minipaas.yaml`. */
export function loadEnvironment(dirArg: string): SwarmEnvironment {
  const dir = resolve(dirArg);
  const file = join(dir, ENVIRONMENT_FILE);
  if (!existsSync(file))
    throw new MinipaasError(
      'MINIPAAS_ERR_NOT_FOUND',
      `${file} not found: create an environment with "minipaas code init ${dirArg}" or pass --dir`,
    );
  const doc = parseDocument(readFileSync(file, 'utf8'));
  if (doc.errors.length > 0)
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${file}: ${doc.errors[0]?.message ?? 'bad YAML'}`);
  const raw = (doc.toJS() ?? {}) as Record<string, unknown>;
  const bad = (what: string): never => {
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${file}: ${what}`);
  };
  const stack = raw.stack;
  if (typeof stack !== 'string' || !STACK_RE.test(stack))
    bad('"stack" must be a lower-case name (letters, digits, - and _)');
  const compose = raw.compose ?? ['compose.yaml'];
  if (!Array.isArray(compose) || compose.length === 0 || compose.some((c) => typeof c !== 'string'))
    bad('"compose" must be a list of file names');
  const abs = (p: string): string => (isAbsolute(p) ? p : join(dir, p));
  const composeFiles = (compose as string[]).map(abs);
  const d = (raw.docker ?? {}) as Record<string, unknown>;
  const host = typeof d.host === 'string' && d.host ? d.host : 'unix:///var/run/docker.sock';
  if (!/^(unix|tcp):\/\//.test(host)) bad('"docker.host" must start with unix:// or tcp://');
  const tls = d.tls === true;
  const certPath = typeof d.certPath === 'string' && d.certPath ? abs(d.certPath) : undefined;
  if (tls && !certPath) bad('"docker.certPath" is required when "docker.tls" is true');
  const c = (raw.caddy ?? {}) as Record<string, unknown>;
  return {
    dir,
    stack: stack as string,
    composeFiles,
    mainCompose: composeFiles[0] as string,
    overrideCompose: composeFiles[composeFiles.length - 1] as string,
    docker: { host, tls, ...(certPath ? { certPath } : {}) },
    registry: typeof raw.registry === 'string' ? raw.registry : '',
    caddy: {
      admin: typeof c.admin === 'string' && c.admin ? c.admin.replace(/\/+$/, '') : 'http://127.0.0.1:2019',
      config: typeof c.config === 'string' && c.config ? c.config : 'caddy.json',
    },
  };
}

/** `DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH` for an endpoint (what `minipaas shell` exports). */
export function dockerEnv(endpoint: DockerEndpoint): Record<string, string> {
  const env: Record<string, string> = { DOCKER_HOST: endpoint.host };
  if (endpoint.tls) env.DOCKER_TLS_VERIFY = '1';
  if (endpoint.certPath) env.DOCKER_CERT_PATH = endpoint.certPath;
  return env;
}

/**
 * The environment for a `docker` child process: the caller's environment without any inherited
 * `DOCKER_*` connection variables, plus the endpoint's.
 */
export function dockerProcessEnv(
  endpoint: DockerEndpoint,
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  delete env.DOCKER_HOST;
  delete env.DOCKER_TLS_VERIFY;
  delete env.DOCKER_CERT_PATH;
  delete env.DOCKER_CONTEXT;
  return { ...env, ...dockerEnv(endpoint) };
}

/** A dockerode client for an endpoint (TLS client certificates from `certPath` when `tls` is set). */
export function dockerClient(endpoint: DockerEndpoint): Docker {
  if (endpoint.host.startsWith('unix://'))
    return new (loadDocker())({ socketPath: endpoint.host.slice('unix://'.length) });
  const url = new URL(endpoint.host.replace(/^tcp:/, 'http:'));
  const port = Number(url.port || (endpoint.tls ? 2376 : 2375));
  if (!endpoint.tls) return new (loadDocker())({ host: url.hostname, port, protocol: 'http' });
  const certDir = endpoint.certPath as string;
  const read = (name: string): Buffer => {
    const p = join(certDir, name);
    if (!existsSync(p))
      throw new MinipaasError(
        'MINIPAAS_ERR_NOT_FOUND',
        `${p} not found: create client certificates with "minipaas certs client --dir ${certDir}"`,
      );
    return readFileSync(p);
  };
  return new (loadDocker())({
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port,
    protocol: 'https',
    ca: read('ca.pem'),
    cert: read('cert.pem'),
    key: read('key.pem'),
  });
}
