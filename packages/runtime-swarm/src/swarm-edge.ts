/**
 * The edge of the swarm runtime: Caddy, configured through its admin API (`POST /load`) from the desired
 * state in Swarm. Every web service of a platform app is routed by host name (`APP.BASE_DOMAIN` and the
 * app's own domains) to the host-mode ports of its running tasks on whichever node they run. The config is
 * loaded only when it changed since the last load.
 */
import { caddyConfig, loadCaddyConfig, nodeAddresses, type RouteInfo, taskEndpoints } from '@minipaas/swarm';
import type Docker from 'dockerode';
import { SWARM_LABEL, SWARM_WEB_PORT } from './service-spec.ts';

/** Options of {@link SwarmEdge}. */
export interface SwarmEdgeOptions {
  /** Engine API of a Swarm manager. */
  docker: Docker;
  /** Caddy's admin API URL, e.g. `http://127.0.0.1:2019`. */
  admin: string;
  /** Address Caddy serves apps on, e.g. `:80` or `127.0.0.1:8080`. */
  listen: string;
  /** Apps answer at `APP.baseDomain`. */
  baseDomain: string;
  /** Caddy's automatic HTTPS (default off: the edge serves plain HTTP on `listen`). */
  automaticHttps?: boolean;
}

interface Service {
  Spec: { Name: string; Labels?: Record<string, string> };
}

export class SwarmEdge {
  readonly #o: SwarmEdgeOptions;
  #last = '';

  constructor(o: SwarmEdgeOptions) {
    this.#o = o;
  }

  /** The routes of every platform web service, from Swarm's current tasks. */
  async routes(): Promise<RouteInfo[]> {
    const { docker } = this.#o;
    const [services, nodes] = await Promise.all([
      docker.listServices({
        filters: JSON.stringify({ label: [`${SWARM_LABEL.runtime}=swarm`, `${SWARM_LABEL.process}=web`] }),
      }) as unknown as Promise<Service[]>,
      nodeAddresses(docker),
    ]);
    const routes: RouteInfo[] = [];
    for (const s of services) {
      const labels = s.Spec.Labels ?? {};
      const app = labels[SWARM_LABEL.app];
      if (!app) continue;
      const eps = await taskEndpoints(docker, s.Spec.Name, SWARM_WEB_PORT, nodes);
      const upstreams = eps.wanted.length ? eps.wanted : eps.leaving;
      const domains = [
        `${app}.${this.#o.baseDomain}`,
        ...(labels[SWARM_LABEL.domains] ?? '').split(',').filter(Boolean),
      ];
      for (const domain of domains)
        routes.push({ service: `${s.Spec.Name}-${domain}`, domain, port: SWARM_WEB_PORT, upstreams });
    }
    return routes.sort((a, b) => a.domain.localeCompare(b.domain));
  }

  /** The full Caddy config for `routes`. */
  config(routes: readonly RouteInfo[]): Record<string, unknown> {
    const base = {
      admin: { listen: new URL(this.#o.admin).host },
      apps: {
        http: {
          servers: {
            minipaas: {
              listen: [this.#o.listen],
              routes: [],
              ...(this.#o.automaticHttps ? {} : { automatic_https: { disable: true } }),
            },
          },
        },
      },
    };
    return caddyConfig(base, routes);
  }

  /** Loads the current routes into Caddy when they changed (or always with `force`). */
  async sync(force = false): Promise<{ routes: RouteInfo[]; pushed: boolean }> {
    const routes = await this.routes();
    const cfg = this.config(routes);
    const text = JSON.stringify(cfg);
    if (!force && text === this.#last) return { routes, pushed: false };
    await loadCaddyConfig(this.#o.admin, cfg);
    this.#last = text;
    return { routes, pushed: true };
  }
}
