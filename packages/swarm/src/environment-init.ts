/** `code init`: writes a new environment directory (minipaas.yaml, compose file and override, Caddy config). */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import { ENVIRONMENT_FILE } from './swarm-environment.ts';

/** Options of {@link initEnvironment}. */
export interface InitOptions {
  /** Directory to create or fill (must not hold a minipaas.yaml yet). */
  dir: string;
  /** Stack name (default: the directory name, lower-cased). */
  stack?: string;
  /** DOCKER_HOST of the swarm manager (default `unix:///var/run/docker.sock`). */
  dockerHost?: string;
  /** Use TLS to the Docker API with the certificates in `certPath` (default: true for tcp:// hosts). */
  tls?: boolean;
  /** Certificate directory, relative to the environment (default `.certs`). */
  certPath?: string;
  /** Private registry host:port (default `127.0.0.1:5000`). */
  registry?: string;
  /** Caddy admin API URL (default `http://127.0.0.1:2019`). */
  caddyAdmin?: string;
  /** Addresses Caddy's HTTP server listens on (default `[":80"]`). */
  httpListen?: string[];
  /** Let Caddy obtain certificates for exposed domains (default true). */
  automaticHttps?: boolean;
}

/** What {@link initEnvironment} wrote. */
export interface InitResult {
  dir: string;
  stack: string;
  files: string[];
}

/** A stack name derived from a directory name. */
export function stackNameFor(dir: string): string {
  const n = basename(resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+|[-_]+$/g, '');
  return n || 'app';
}

/** Creates an environment. Refuses to touch a directory that already has a minipaas.yaml. */
export function initEnvironment(opts: InitOptions): InitResult {
  const dir = resolve(opts.dir);
  const stack = opts.stack ?? stackNameFor(dir);
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(stack))
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `bad stack name ${JSON.stringify(stack)}: use lower-case letters, digits, - and _`,
    );
  if (existsSync(join(dir, ENVIRONMENT_FILE)))
    throw new MinipaasError('MINIPAAS_ERR_CONFLICT', `${join(dir, ENVIRONMENT_FILE)} already exists`);
  const host = opts.dockerHost ?? 'unix:///var/run/docker.sock';
  if (!/^(unix|tcp):\/\/\S+$/.test(host))
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `bad Docker host ${JSON.stringify(host)}: use unix:// or tcp://`,
    );
  const tls = opts.tls ?? host.startsWith('tcp://');
  const admin = opts.caddyAdmin ?? 'http://127.0.0.1:2019';
  let adminListen: string;
  try {
    adminListen = new URL(admin).host;
  } catch {
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `bad Caddy admin URL ${JSON.stringify(admin)}`);
  }
  const files: Record<string, string> = {
    [ENVIRONMENT_FILE]: `# MiniPaaS environment (docs/swarm.md): read by "minipaas code", "secret", "config", "deploy" and "shell".
# Services run as <stack>_<service>.
stack: ${stack}
# Compose files, merged in this order by "docker stack deploy". The "code" commands edit the first one;
# "deploy build" writes the pushed image references to the last one.
compose:
  - compose.yaml
  - compose.override.yaml
# The swarm manager's Docker API. Over TLS: host tcp://MANAGER:2376, tls: true and certPath holding
# ca.pem, cert.pem and key.pem (from "minipaas certs client").
docker:
  host: ${host}
  tls: ${tls}
  certPath: ${opts.certPath ?? '.certs'}
# Private registry: "deploy build" pushes there and every node pulls from it.
registry: ${opts.registry ?? '127.0.0.1:5000'}
# Caddy, the edge router: "deploy routing" loads the config file plus a route per exposed service.
caddy:
  admin: ${admin}
  config: caddy.json
`,
    'compose.yaml': `# Services of the ${stack} stack (Compose format, deployed with "docker stack deploy").
# "minipaas code expose|worker|job|cron" edit this file and keep your comments and order.
services: {}
`,
    'compose.override.yaml': `# Environment overrides, merged over compose.yaml (replicas, placement, resources).
# "minipaas deploy build" writes the pushed image references here.
services: {}
`,
    'caddy.json': `${JSON.stringify(
      {
        admin: { listen: adminListen },
        apps: {
          http: {
            servers: {
              minipaas: {
                listen: opts.httpListen ?? [':80'],
                routes: [],
                ...(opts.automaticHttps === false ? { automatic_https: { disable: true } } : {}),
              },
            },
          },
        },
      },
      null,
      2,
    )}\n`,
  };
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    const p = join(dir, name);
    if (existsSync(p) && name !== ENVIRONMENT_FILE) continue; // keep a compose file the user already has
    writeFileSync(p, text);
    written.push(p);
  }
  return { dir, stack, files: written };
}
