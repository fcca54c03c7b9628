/**
 * Routes the node agent's router serves for apps it does not run itself: the docker runtime's containers
 * publish their web port on 127.0.0.1 and the docker driver puts the ports of an app's healthy web
 * containers here (ADR 0009). A target replaced by a new set keeps its in-flight count until its requests
 * are done ({@link ExternalRoutes.inFlight}), so the driver drains it before stopping its container.
 */
import type { RouteTarget } from './router/router.ts';

/** Most targets one app may register (a bound on what a client of the agent socket can make it hold). */
export const MAX_EXTERNAL_TARGETS = 256;

export interface ExternalRouteState {
  app: string;
  /** Ports now routed. */
  ports: number[];
  /** In-flight requests per port, for current and replaced targets that still have some. */
  inFlight: Record<string, number>;
}

export class ExternalRoutes {
  readonly #current = new Map<string, RouteTarget[]>();
  /** Replaced targets that may still carry requests. */
  readonly #replaced = new Map<string, RouteTarget[]>();

  /** Routed targets of `app`, or null when no external route exists. */
  targets(app: string): RouteTarget[] | null {
    return this.#current.get(app) ?? null;
  }

  /** Replaces the routed ports of `app` atomically; targets kept keep their in-flight counts. */
  put(app: string, ports: number[]): ExternalRouteState {
    const before = this.#current.get(app) ?? [];
    const next: RouteTarget[] = [];
    for (const port of [...new Set(ports)]) {
      next.push(before.find((t) => t.port === port) ?? { port, inFlight: 0 });
    }
    const dropped = before.filter((t) => !next.includes(t) && t.inFlight > 0);
    const still = (this.#replaced.get(app) ?? []).filter((t) => t.inFlight > 0 && !next.includes(t));
    this.#replaced.set(app, [...still, ...dropped]);
    this.#current.set(app, next);
    return this.state(app);
  }

  remove(app: string): void {
    this.#current.delete(app);
    this.#replaced.delete(app);
  }

  state(app: string): ExternalRouteState {
    const inFlight: Record<string, number> = {};
    const live = (this.#replaced.get(app) ?? []).filter((t) => t.inFlight > 0);
    this.#replaced.set(app, live);
    for (const t of [...(this.#current.get(app) ?? []), ...live]) {
      if (t.port !== null) inFlight[String(t.port)] = (inFlight[String(t.port)] ?? 0) + t.inFlight;
    }
    return { app, ports: (this.#current.get(app) ?? []).map((t) => t.port ?? 0), inFlight };
  }

  list(): ExternalRouteState[] {
    return [...this.#current.keys()].map((a) => this.state(a));
  }
}
