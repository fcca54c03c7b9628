import {
  type AgentAppState,
  type AgentHealth,
  type AppSpec,
  type ErrorBody,
  homePaths,
  isErrorCode,
  type LogLine,
  MinipaasError,
} from '@minipaas/core';
import { Client, type Dispatcher } from 'undici';

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

const UNREACHABLE = new Set([
  'ENOENT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EACCES',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/** Typed client of the agent protocol over its unix socket. The control plane uses this. */
export class AgentClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private client: Client;

  /** @param options the socket path, or options */
  constructor(options: AgentClientOptions | string) {
    if (typeof options === 'string') options = { socketPath: options };
    const socketPath = options.socketPath ?? (options.home ? homePaths(options.home).agentSocket : undefined);
    if (!socketPath) throw new TypeError('AgentClient needs socketPath or home');
    this.socketPath = socketPath;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.client = this.newClient();
  }

  private newClient(): Client {
    return new Client('http://minipaas-agent', { socketPath: this.socketPath, pipelining: 1 });
  }

  private unavailable(err: unknown): MinipaasError {
    return new MinipaasError(
      'MINIPAAS_ERR_AGENT_UNAVAILABLE',
      `node agent is not reachable at ${this.socketPath}: ${(err as Error).message}`,
      { cause: err },
    );
  }

  private async send(
    method: Dispatcher.HttpMethod,
    path: string,
    body?: unknown,
    opts: { signal?: AbortSignal; stream?: boolean } = {},
  ): Promise<Dispatcher.ResponseData> {
    if (this.client.closed || this.client.destroyed) this.client = this.newClient();
    let res: Dispatcher.ResponseData;
    try {
      res = await this.client.request({
        method,
        path,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        ...(opts.stream
          ? { bodyTimeout: 0 }
          : { bodyTimeout: this.timeoutMs, headersTimeout: this.timeoutMs }),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const causeCode = ((err as { cause?: NodeJS.ErrnoException }).cause?.code as string | undefined) ?? '';
      if (UNREACHABLE.has(code) || UNREACHABLE.has(causeCode)) throw this.unavailable(err);
      throw this.unavailable(err);
    }
    if (res.statusCode >= 400) {
      let parsed: Partial<ErrorBody> | null = null;
      try {
        parsed = (await res.body.json()) as Partial<ErrorBody>;
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
      throw new MinipaasError(
        'MINIPAAS_ERR_INTERNAL',
        `agent answered ${res.statusCode} to ${method} ${path}`,
      );
    }
    return res;
  }

  private async json<T>(method: Dispatcher.HttpMethod, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    return (await res.body.json()) as T;
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
    const text = await res.body.text();
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

  /** GET of an NDJSON stream on a dedicated connection (the shared one must stay free for other calls). */
  private async *ndjson<T>(path: string, signal: AbortSignal | undefined): AsyncIterable<T> {
    const client = this.newClient();
    const onAbort = () => void client.destroy().catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal?.aborted) return;
      let res: Dispatcher.ResponseData;
      try {
        res = await client.request({ method: 'GET', path, bodyTimeout: 0 });
      } catch (err) {
        if (signal?.aborted) return;
        throw this.unavailable(err);
      }
      if (res.statusCode >= 400) {
        const body = (await res.body.json().catch(() => null)) as Partial<ErrorBody> | null;
        const e = body?.error;
        if (e && isErrorCode(e.code)) throw new MinipaasError(e.code, e.message);
        throw new MinipaasError('MINIPAAS_ERR_INTERNAL', `agent answered ${res.statusCode}`);
      }
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
      signal?.removeEventListener('abort', onAbort);
      await client.destroy().catch(() => {});
    }
  }

  /** Asks the agent to stop every app and exit. */
  async shutdown(): Promise<{ ok: true }> {
    return this.json('POST', '/v1/shutdown');
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => {});
  }
}
