/**
 * The edge of the swarm runtime: Caddy, configured through its admin API (`POST /load`) from the desired
 * state in Swarm. Every web service of a platform app is routed by host name (`APP.BASE_DOMAIN` and the
 * app's own domains) to the host-mode ports of its running tasks on whichever node they run.
 *
 * With an {@link UpstreamDns} (the default, `swarm.edgeDns`), each route takes its upstreams from SRV
 * lookups that minipaasd answers, so the config changes only when apps or domains do: tasks coming and
 * going during a rollout, a drain or a node failure cost no config load, and no connection is reset by
 * Caddy's listener swap (docs/swarm.md, "Known limits"). Without one, the upstreams are written into the
 * config. Either way the config is loaded only when it differs from what Caddy runs.
 */
import {
  caddyConfig,
  currentCaddyConfig,
  loadCaddyConfig,
  nodeAddresses,
  type RouteInfo,
  sameJson,
  taskEndpoints,
  type UpstreamDns,
} from '@minipaas/swarm';
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
  /**
   * Serve the upstreams by SRV from this DNS server (started by minipaasd; the build worker only names
   * it in the config). Default: upstreams written into the config.
   */
  dns?: UpstreamDns;
}

interface Service {
  Spec: { Name: string; Labels?: Record<string, string> };
}

export class SwarmEdge {
  readonly #o: SwarmEdgeOptions;
  #last = '';
  #syncing = false;
  #again = false;

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
      const dns = this.#o.dns;
      const srv = dns ? { name: dns.nameFor(s.Spec.Name), resolver: dns.resolverAddress } : undefined;
      for (const domain of domains)
        routes.push({
          service: `${s.Spec.Name}-${domain}`,
          domain,
          port: SWARM_WEB_PORT,
          upstreams,
          ...(srv ? { srv } : {}),
        });
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

  /**
   * Brings the edge up to date: the DNS answers always, Caddy's config when it changed (or always with
   * `force`). A process that starts finds Caddy running the same config and loads nothing.
   */
  async sync(force = false): Promise<{ routes: RouteInfo[]; pushed: boolean }> {
    const routes = await this.routes();
    const dns = this.#o.dns;
    if (dns) {
      const names = new Map<string, string[]>();
      for (const r of routes) if (r.srv) names.set(r.srv.name, r.upstreams);
      dns.replace(names);
    }
    const cfg = this.config(routes);
    const text = JSON.stringify(cfg);
    if (!force && text === this.#last) return { routes, pushed: false };
    if (!force && !this.#last && sameJson(await currentCaddyConfig(this.#o.admin), cfg)) {
      this.#last = text;
      return { routes, pushed: false };
    }
    await loadCaddyConfig(this.#o.admin, cfg);
    this.#last = text;
    return { routes, pushed: true };
  }

  /**
   * A sync soon, for a DNS miss (a route whose tasks are not known yet): never two at once, and one more
   * after the running one when asked meanwhile. A failure goes to `onError`.
   */
  requestSync(onError: (err: unknown) => void): void {
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    this.#syncing = true;
    void (async () => {
      do {
        this.#again = false;
        await this.sync().catch(onError);
      } while (this.#again);
      this.#syncing = false;
    })();
  }
}
