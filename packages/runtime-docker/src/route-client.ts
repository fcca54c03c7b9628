/**
 * Client of the node agent's external-route API (`/v1/routes/:app` on the agent's unix socket): the docker
 * driver puts the published ports of an app's healthy web containers there and reads their in-flight
 * counts to drain replaced ones (ADR 0009).
 */
import { request } from 'node:http';
import { MinipaasError } from '@minipaas/core';

export interface RouteState {
  app: string;
  ports: number[];
  /** In-flight requests per port (current and replaced targets). */
  inFlight: Record<string, number>;
}

/** What the docker driver needs from a router. */
export interface RouteApi {
  put(app: string, ports: number[]): Promise<RouteState>;
  get(app: string): Promise<RouteState>;
  remove(app: string): Promise<void>;
}

export class AgentRouteClient implements RouteApi {
  readonly #socket: string;

  /** @param socketPath the agent's unix socket (`MINIPAAS_HOME/run/agent.sock`). */
  constructor(socketPath: string) {
    this.#socket = socketPath;
  }

  put(app: string, ports: number[]): Promise<RouteState> {
    return this.#call('PUT', app, { ports });
  }
  get(app: string): Promise<RouteState> {
    return this.#call('GET', app);
  }
  async remove(app: string): Promise<void> {
    await this.#call('DELETE', app);
  }

  #call(method: string, app: string, body?: unknown): Promise<RouteState> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.#socket,
          method,
          path: `/v1/routes/${encodeURIComponent(app)}`,
          agent: false,
          headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 500) >= 300) {
              reject(
                new MinipaasError(
                  'MINIPAAS_ERR_AGENT_UNAVAILABLE',
                  `the agent refused the route of ${app}: ${res.statusCode} ${text.slice(0, 200)}`,
                ),
              );
              return;
            }
            try {
              resolve(JSON.parse(text) as RouteState);
            } catch (err) {
              reject(err);
            }
          });
        },
      );
      req.on('error', (err) =>
        reject(
          new MinipaasError(
            'MINIPAAS_ERR_AGENT_UNAVAILABLE',
            `cannot reach the node agent's router (${err.message})`,
          ),
        ),
      );
      req.end(data);
    });
  }
}
