/**
 * `deploy routing`: the Caddy HTTP configuration of an environment — its base `caddy.json` plus one
 * route per exposed service, whose upstreams are the host-mode ports of that service's running tasks
 * (and of its canary) — loaded through Caddy's admin API (`POST /load`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';
import { LABELS } from './service-generators.ts';
import {
  CANARY_LABEL,
  canaryServices,
  nodeAddresses,
  stackServices,
  taskEndpoints,
} from './stack-services.ts';
import type { SwarmEnvironment } from './swarm-environment.ts';

/** One exposed service and where its traffic goes. */
export interface RouteInfo {
  service: string;
  domain: string;
  path?: string;
  port: number;
  upstreams: string[];
  /**
   * Take the upstreams from SRV lookups of this name at this resolver (an {@link UpstreamDns}) instead of
   * `upstreams`: the config then stays the same while tasks come and go (Caddy refreshes every second).
   */
  srv?: { name: string; resolver: string };
}

type Json = Record<string, unknown>;

/** The exposed services of the stack with the addresses of their running tasks (canaries included). */
export async function collectRoutes(env: SwarmEnvironment, docker: Docker): Promise<RouteInfo[]> {
  const [services, canaries, nodes] = await Promise.all([
    stackServices(docker, env.stack),
    canaryServices(docker, env.stack),
    nodeAddresses(docker),
  ]);
  const routes: RouteInfo[] = [];
  for (const s of services) {
    const labels = s.Spec.Labels ?? {};
    const domain = labels[LABELS.domain];
    if (!domain) continue;
    const port = Number(labels[LABELS.port] ?? 80);
    const eps = [await taskEndpoints(docker, s.Spec.Name, port, nodes)];
    for (const c of canaries.filter((x) => x.Spec.Labels?.[CANARY_LABEL] === s.Spec.Name))
      eps.push(await taskEndpoints(docker, c.Spec.Name, port, nodes));
    // The tasks Swarm wants running; only while there are none (mid-update), those still on their way out.
    let upstreams = eps.flatMap((e) => e.wanted);
    if (upstreams.length === 0) upstreams = eps.flatMap((e) => e.leaving);
    const path = labels[LABELS.path];
    routes.push({ service: s.Spec.Name, domain, port, upstreams, ...(path ? { path } : {}) });
  }
  // Longer paths first so a prefix route does not shadow a more specific one.
  return routes.sort(
    (a, b) => (b.path ?? '').length - (a.path ?? '').length || a.domain.localeCompare(b.domain),
  );
}

/** Reads the environment's base Caddy config (JSON). */
export function baseCaddyConfig(env: SwarmEnvironment): Json {
  const file = join(env.dir, env.caddy.config);
  if (!existsSync(file)) throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `${file} not found`);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Json;
  } catch (err) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** How every route balances: a task that is going away refuses connections, so try the next for up to 5 s. */
const BALANCING = {
  load_balancing: { selection_policy: { policy: 'round_robin' }, try_duration: '5s', try_interval: '100ms' },
  health_checks: { passive: { fail_duration: '5s', max_fails: 1 } },
};

/**
 * A reverse-proxy route: to SRV-resolved upstreams, to the listed ones, or (no running task and no SRV
 * name) a 503 so Caddy answers instead of failing to load.
 */
function caddyRoute(r: RouteInfo): Json {
  const match: Json = { host: [r.domain] };
  if (r.path) match.path = [r.path.endsWith('/') ? `${r.path}*` : `${r.path}*`];
  const resolver = r.srv ? { addresses: [r.srv.resolver] } : undefined;
  const handle = r.srv
    ? [
        {
          handler: 'reverse_proxy',
          dynamic_upstreams: { source: 'srv', name: r.srv.name, refresh: '1s', resolver },
          // The SRV targets are names of the same server (they encode the task's address).
          transport: { protocol: 'http', resolver },
          ...BALANCING,
        },
      ]
    : r.upstreams.length === 0
      ? [{ handler: 'static_response', status_code: 503, body: `no running task of ${r.service}\n` }]
      : [{ handler: 'reverse_proxy', upstreams: r.upstreams.map((dial) => ({ dial })), ...BALANCING }];
  return {
    '@id': `minipaas-${r.service}${r.path ? r.path.replace(/\W+/g, '-') : ''}`,
    match: [match],
    handle,
    terminal: true,
  };
}

/** The full Caddy config: the base file with the routes of exposed services prepended to its first server. */
export function caddyConfig(base: Json, routes: readonly RouteInfo[]): Json {
  const cfg = structuredClone(base);
  cfg.apps ??= {};
  const apps = cfg.apps as Json;
  apps.http ??= {};
  const http = apps.http as Json;
  http.servers ??= {};
  const servers = http.servers as Record<string, Json>;
  let name = Object.keys(servers)[0];
  if (!name) {
    name = 'minipaas';
    servers[name] = { listen: [':80'], routes: [] };
  }
  const server = servers[name] as Json;
  server.routes = [...routes.map(caddyRoute), ...((server.routes as Json[] | undefined) ?? [])];
  return cfg;
}

/** Loads a config into Caddy through its admin API. */
export async function loadCaddyConfig(admin: string, config: Json): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${admin}/load`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(config),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    throw new MinipaasError(
      'MINIPAAS_ERR_NOT_AVAILABLE',
      `Caddy's admin API at ${admin} is not reachable (${err instanceof Error ? err.message : String(err)}): is caddy running?`,
    );
  }
  if (!res.ok) {
    const text = (await res.text()).trim().slice(0, 400);
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `Caddy refused the config (HTTP ${res.status}): ${text}`,
    );
  }
}

/** The config Caddy runs now (`GET /config/`), or undefined when its admin API does not answer with one. */
export async function currentCaddyConfig(admin: string): Promise<unknown> {
  try {
    const res = await fetch(`${admin}/config/`, { signal: AbortSignal.timeout(5000) });
    return res.ok ? await res.json() : undefined;
  } catch {
    return undefined;
  }
}

/** JSON with object keys sorted, so that two configs compare equal whatever their key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** True when `a` and `b` are the same JSON value (key order aside). */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

/** Keeps Caddy in step with the stack: loads the config when it changed since the last push. */
export class RoutingSync {
  private last = '';
  private readonly env: SwarmEnvironment;
  private readonly docker: Docker;

  constructor(env: SwarmEnvironment, docker: Docker) {
    this.env = env;
    this.docker = docker;
  }

  /** Pushes the current routes; returns them and whether Caddy got a new config. */
  async sync(force = false): Promise<{ routes: RouteInfo[]; pushed: boolean }> {
    const routes = await collectRoutes(this.env, this.docker);
    const cfg = caddyConfig(baseCaddyConfig(this.env), routes);
    const text = JSON.stringify(cfg);
    if (!force && text === this.last) return { routes, pushed: false };
    await loadCaddyConfig(this.env.caddy.admin, cfg);
    this.last = text;
    return { routes, pushed: true };
  }
}
