import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import {
  type AgentAppMetrics,
  type AgentAppState,
  type AgentHealth,
  type AppSpec,
  type ErrorBody,
  homePaths,
  isErrorCode,
  type LogLine,
  MinipaasError,
} from '@minipaas/core';

/** Options of {@link AgentClient}. */
export interface AgentClientOptions {
  /** Unix socket of the agent; default `homePaths(home).agentSocket`. */
  socketPath?: string;
  /** MINIPAAS_HOME used to find the socket when `socketPath` is not given. */
  home?: string;
  /** Per-request timeout for non-streaming calls (default 30 s). */
  timeoutMs?: number;
}

export interface LogsQuery {
  /** Number of past lines (default 100). */
  tail?: number;
  /** Only this process type. */
  process?: string;
  /** Only lines at or after this ISO time. */
  since?: string;
}

type HttpMethod = 'GET' | 'PUT' | 'POST' | 'DELETE';

/** A response whose body has not been read yet. */
interface AgentResponse {
  statusCode: number;
  body: IncomingMessage;
}

async function readText(body: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Typed client of the agent protocol over its unix socket. The control plane uses this. It speaks HTTP
 * with `node:http` (already in every Node process) rather than undici, which would add ~20 MB to
 * minipaasd and the build worker.
 */
export class AgentClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  /** Kept-alive connections for calls; streams use connections of their own. */
  private readonly pool = new Agent({ keepAlive: true, maxSockets: 4 });

  /** @param options the socket path, or options */
  constructor(options: AgentClientOptions | string) {
    if (typeof options === 'string') options = { socketPath: options };
    const socketPath = options.socketPath ?? (options.home ? homePaths(options.home).agentSocket : undefined);
    if (!socketPath) throw new TypeError('AgentClient needs socketPath or home');
    this.socketPath = socketPath;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  private unavailable(err: unknown): MinipaasError {
    return new MinipaasError(
      'MINIPAAS_ERR_AGENT_UNAVAILABLE',
      `node agent is not reachable at ${this.socketPath}: ${(err as Error).message}`,
      { cause: err },
    );
  }

  /**
   * One request; resolves once the response headers arrived. `stream`: no timeout, own connection;
   * `fresh`: own connection.
   */
  private request(
    method: HttpMethod,
    path: string,
    body: unknown,
    opts: { signal?: AbortSignal; stream?: boolean; fresh?: boolean },
  ): Promise<AgentResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<AgentResponse>((resolve, reject) => {
      const req = httpRequest({
        socketPath: this.socketPath,
        method,
        path,
        agent: opts.stream || opts.fresh ? false : this.pool,
        headers: {
          host: 'minipaas-agent',
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      if (!opts.stream) {
        req.setTimeout(this.timeoutMs, () =>
          req.destroy(new Error(`no answer to ${method} ${path} within ${this.timeoutMs} ms`)),
        );
      }
      req.once('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection the agent closed just as it was reused: send once more on a new one
        // (the request never reached the agent).
        if (req.reusedSocket && err.code === 'ECONNRESET' && !opts.signal?.aborted)
          this.request(method, path, body, { ...opts, fresh: true }).then(resolve, reject);
        else reject(err);
      });
      req.once('response', (res) => {
        if (!opts.stream) {
          // The timeout covers the body too; a body that fails makes the read fail.
          res.once('error', () => {});
        }
        resolve({ statusCode: res.statusCode ?? 0, body: res });
      });
      req.end(payload);
    });
  }

  /** Throws the agent's error (its code kept) for a 4xx/5xx answer. */
  private async failure(res: AgentResponse, what: string): Promise<never> {
    let parsed: Partial<ErrorBody> | null = null;
    try {
      parsed = JSON.parse(await readText(res.body)) as Partial<ErrorBody>;
    } catch {
      parsed = null;
    }
    const e = parsed?.error;
    if (e && isErrorCode(e.code)) {
      throw new MinipaasError(
        e.code,
        e.message,
        e.details === undefined ? undefined : { details: e.details },
      );
    }
    throw new MinipaasError('MINIPAAS_ERR_INTERNAL', `agent answered ${res.statusCode} to ${what}`);
  }

  private async send(
    method: HttpMethod,
    path: string,
    body?: unknown,
    opts: { signal?: AbortSignal; stream?: boolean } = {},
  ): Promise<AgentResponse> {
    let res: AgentResponse;
    try {
      res = await this.request(method, path, body, opts);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw this.unavailable(err);
    }
    if (res.statusCode >= 400) return this.failure(res, `${method} ${path}`);
    return res;
  }

  private async json<T>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    try {
      return JSON.parse(await readText(res.body)) as T;
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  health(): Promise<AgentHealth> {
    return this.json('GET', '/v1/health');
  }

  listApps(): Promise<AgentAppState[]> {
    return this.json('GET', '/v1/apps');
  }

  /** The app's observed state, or null when the agent does not run it. */
  async getApp(name: string): Promise<AgentAppState | null> {
    try {
      return await this.json<AgentAppState>('GET', `/v1/apps/${encodeURIComponent(name)}`);
    } catch (err) {
      if (
        err instanceof MinipaasError &&
        (err.code === 'MINIPAAS_ERR_APP_NOT_FOUND' || err.code === 'MINIPAAS_ERR_NOT_FOUND')
      ) {
        return null;
      }
      throw err;
    }
  }

  /** Recent CPU/memory samples of the app's instances, or null when the agent does not run the app. */
  async metrics(name: string): Promise<AgentAppMetrics | null> {
    try {
      return await this.json<AgentAppMetrics>('GET', `/v1/apps/${encodeURIComponent(name)}/metrics`);
    } catch (err) {
      if (
        err instanceof MinipaasError &&
        (err.code === 'MINIPAAS_ERR_APP_NOT_FOUND' || err.code === 'MINIPAAS_ERR_NOT_FOUND')
      ) {
        return null;
      }
      throw err;
    }
  }

  /** Pushes the desired state; idempotent (an identical spec changes nothing). */
  putApp(spec: AppSpec): Promise<AgentAppState> {
    return this.json('PUT', `/v1/apps/${encodeURIComponent(spec.name)}`, spec);
  }

  deleteApp(name: string): Promise<{ stopped: number }> {
    return this.json('DELETE', `/v1/apps/${encodeURIComponent(name)}`);
  }

  restartApp(name: string): Promise<AgentAppState> {
    return this.json('POST', `/v1/apps/${encodeURIComponent(name)}/restart`);
  }

  private logsPath(name: string, q: LogsQuery, follow: boolean): string {
    const p = new URLSearchParams();
    if (q.tail !== undefined) p.set('tail', String(q.tail));
    if (q.process) p.set('process', q.process);
    if (q.since) p.set('since', q.since);
    if (follow) p.set('follow', '1');
    const qs = p.toString();
    return `/v1/apps/${encodeURIComponent(name)}/logs${qs ? `?${qs}` : ''}`;
  }

  /** The last lines of an app (all instances, oldest first). */
  async logs(name: string, q: LogsQuery = {}): Promise<LogLine[]> {
    const res = await this.send('GET', this.logsPath(name, q, false));
    const text = await readText(res.body);
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogLine);
  }

  /** The last lines, then every new line until `signal` aborts (or the agent goes away). */
  followLogs(name: string, q: LogsQuery & { signal?: AbortSignal } = {}): AsyncIterable<LogLine> {
    return this.ndjson<LogLine>(this.logsPath(name, q, true), q.signal);
  }

  /**
   * The app's state now, then after every change, until `signal` aborts; ends when the app is removed or
   * the agent goes away. Throws `MINIPAAS_ERR_APP_NOT_FOUND` when the agent does not run the app.
   */
  watchApp(name: string, opts: { signal?: AbortSignal } = {}): AsyncIterable<AgentAppState> {
    return this.ndjson<AgentAppState>(`/v1/apps/${encodeURIComponent(name)}/watch`, opts.signal);
  }

  /** GET of an NDJSON stream on a dedicated connection (the shared ones must stay free for other calls). */
  private async *ndjson<T>(path: string, signal: AbortSignal | undefined): AsyncIterable<T> {
    if (signal?.aborted) return;
    let res: AgentResponse;
    try {
      res = await this.request('GET', path, undefined, { stream: true, ...(signal ? { signal } : {}) });
    } catch (err) {
      if (signal?.aborted) return;
      throw this.unavailable(err);
    }
    try {
      if (res.statusCode >= 400) await this.failure(res, `GET ${path}`);
      let buf = '';
      try {
        for await (const chunk of res.body) {
          buf += (chunk as Buffer).toString('utf8');
          let i = buf.indexOf('\n');
          while (i !== -1) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line) yield JSON.parse(line) as T;
            i = buf.indexOf('\n');
          }
        }
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
    } finally {
      res.body.destroy();
    }
  }

  /** Asks the agent to stop every app and exit. */
  async shutdown(): Promise<{ ok: true }> {
    return this.json('POST', '/v1/shutdown');
  }

  async close(): Promise<void> {
    this.pool.destroy();
  }
}
