/** A small typed client of the MiniPaaS REST API (docs/api.md). */
import type {
  AgentHealth,
  AppView,
  DeploymentView,
  InstanceInfo,
  LogLine,
  ProjectView,
} from '@minipaas/core';
import { CliError } from './cli-error.ts';
import { readSse, type SseEvent } from './sse.ts';

/** An error answer of the API: `{error:{code,message}}` mapped to a thrown error with that message. */
export class ApiError extends CliError {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export interface InstanceView extends Omit<InstanceInfo, 'release'> {
  release: string | number | null;
}

export interface StatusView {
  version: string;
  api: { url: string };
  router: { url: string; port: number; baseDomain: string };
  agent: (Partial<Omit<AgentHealth, 'ok'>> & { ok?: boolean; error?: string }) | null;
  apps: { total: number; running: number; failed: number };
}

export interface WhoamiView {
  token: { id: string; name: string; role: string };
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  body?: Uint8Array;
  /** A streamed body (sent chunked; large uploads never sit in memory). */
  stream?: AsyncIterable<Uint8Array>;
  /** Length of `stream` when known (lets the server answer a refused upload instead of cutting it off). */
  contentLength?: number;
  contentType?: string;
  signal?: AbortSignal;
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ETIMEDOUT',
]);

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const errors = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(errors) && errors[0]) e = errors[0];
    else e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

const seg = (s: string): string => encodeURIComponent(s);

export class ApiClient {
  readonly url: string;
  readonly token: string | undefined;

  constructor(opts: { url: string; token: string | undefined }) {
    this.url = opts.url.replace(/\/+$/, '');
    this.token = opts.token;
  }

  #href(path: string, query?: RequestOptions['query']): string {
    const u = new URL(this.url + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.href;
  }

  /** Sends a request; returns the raw response when it is 2xx, throws ApiError/CliError otherwise. */
  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let body: string | Uint8Array | AsyncIterable<Uint8Array> | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      body = opts.body;
    } else if (opts.stream) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      body = opts.stream;
      if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
    }
    let res: Response;
    try {
      res = await fetch(this.#href(path, opts.query), {
        method,
        headers,
        body: (body ?? null) as RequestInit['body'],
        signal: opts.signal ?? null,
        ...(opts.stream ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') throw err;
      const code = errorCode(err);
      if (code && UNREACHABLE.has(code)) {
        throw new CliError(`cannot reach the MiniPaaS API at ${this.url} — is it running? (minipaas up)`);
      }
      const reason = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      throw new CliError(`request to ${this.url} failed: ${reason}`);
    }
    if (res.ok) return res;
    throw await this.#error(res);
  }

  async #error(res: Response): Promise<ApiError> {
    const text = await res.text().catch(() => '');
    let code = `HTTP_${res.status}`;
    let message = `${res.status} ${res.statusText || 'error'} from ${this.url}`;
    try {
      const data = JSON.parse(text) as {
        error?: { code?: unknown; message?: unknown } | string;
        message?: unknown;
      };
      if (data.error && typeof data.error === 'object') {
        if (typeof data.error.code === 'string') code = data.error.code;
        if (typeof data.error.message === 'string') message = data.error.message;
      } else if (typeof data.message === 'string') message = data.message;
    } catch {
      // not JSON: keep the status line
    }
    if (res.status === 401 && !this.token) {
      message = `${message} — no API token: run minipaas login, or set MINIPAAS_TOKEN`;
    }
    return new ApiError(res.status, code, message);
  }

  /** JSON request; `undefined` for 204. */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.raw(method, path, opts);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`unexpected answer from ${this.url}${path}: not JSON`);
    }
  }

  /** Opens a Server-Sent Events stream. */
  async *events(
    path: string,
    query: RequestOptions['query'],
    signal?: AbortSignal,
  ): AsyncGenerator<SseEvent> {
    const res = await this.raw('GET', path, { query, ...(signal ? { signal } : {}) });
    if (!res.body) return;
    yield* readSse(res.body as AsyncIterable<Uint8Array>);
  }

  // --- resources -------------------------------------------------------------------------------

  whoami(): Promise<WhoamiView> {
    return this.request('GET', '/api/v1/whoami');
  }
  status(): Promise<StatusView> {
    return this.request('GET', '/api/v1/status');
  }
  async health(signal?: AbortSignal): Promise<{ status: string; version?: string }> {
    return this.request('GET', '/health', signal ? { signal } : {});
  }

  async listProjects(): Promise<ProjectView[]> {
    return (await this.request<{ projects: ProjectView[] }>('GET', '/api/v1/projects')).projects;
  }
  createProject(body: { name: string; slug?: string; description?: string }): Promise<ProjectView> {
    return this.request('POST', '/api/v1/projects', { json: body });
  }
  deleteProject(id: string): Promise<void> {
    return this.request('DELETE', `/api/v1/projects/${seg(id)}`);
  }

  async listApps(project?: string): Promise<AppView[]> {
    return (await this.request<{ apps: AppView[] }>('GET', '/api/v1/apps', { query: { project } })).apps;
  }
  /** The app; `reveal` asks for secret values (the `app:secret:reveal` permission). */
  getApp(app: string, opts: { reveal?: boolean } = {}): Promise<AppView> {
    return this.request('GET', `/api/v1/apps/${seg(app)}`, opts.reveal ? { query: { reveal: 'true' } } : {});
  }
  /** The app, or undefined when the API says it does not exist. */
  async findApp(app: string): Promise<AppView | undefined> {
    try {
      return await this.getApp(app);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return undefined;
      throw err;
    }
  }
  createApp(body: {
    name: string;
    project?: string;
    /** A git source (docs/git.md). */
    git?: { url: string; ref: string };
    command?: string;
    runtime?: 'process' | 'docker' | 'swarm';
    env?: Record<string, string>;
  }): Promise<AppView> {
    return this.request('POST', '/api/v1/apps', { json: body });
  }
  patchApp(
    app: string,
    body: { env?: Record<string, string | null>; secrets?: Record<string, string | null>; command?: string },
  ): Promise<AppView> {
    return this.request('PATCH', `/api/v1/apps/${seg(app)}`, { json: body });
  }
  /** A new master key; every secret is sealed again under it. */
  rotateMasterKey(): Promise<{ kid: string; resealed: number }> {
    return this.request('POST', '/api/v1/secrets/rotate-key', { json: {} });
  }
  deleteApp(app: string): Promise<void> {
    return this.request('DELETE', `/api/v1/apps/${seg(app)}`);
  }

  deployCommand(app: string, body: { command: string; message?: string }): Promise<DeploymentView> {
    return this.request('POST', `/api/v1/apps/${seg(app)}/deploy`, { json: body });
  }
  /** Uploads a gzipped tarball; `command` overrides the detected web command. */
  deployTarball(
    app: string,
    tarball: Uint8Array,
    opts: { message?: string; command?: string } = {},
  ): Promise<DeploymentView> {
    return this.request('POST', `/api/v1/apps/${seg(app)}/deploy`, {
      body: tarball,
      contentType: 'application/gzip',
      query: { message: opts.message, command: opts.command },
    });
  }
  async listDeployments(app: string): Promise<DeploymentView[]> {
    const res = await this.request<{ deployments: DeploymentView[] }>(
      'GET',
      `/api/v1/apps/${seg(app)}/deployments`,
    );
    return res.deployments;
  }
  getDeployment(id: string): Promise<DeploymentView> {
    return this.request('GET', `/api/v1/deployments/${seg(id)}`);
  }
  deploymentLog(id: string, signal?: AbortSignal): AsyncGenerator<SseEvent> {
    return this.events(`/api/v1/deployments/${seg(id)}/log`, { follow: 'true' }, signal);
  }

  async instances(app: string): Promise<InstanceView[]> {
    const res = await this.request<{ instances: InstanceView[] }>(
      'GET',
      `/api/v1/apps/${seg(app)}/instances`,
    );
    return res.instances;
  }
  scale(app: string, formation: Record<string, number>): Promise<AppView> {
    return this.request('POST', `/api/v1/apps/${seg(app)}/scale`, { json: formation });
  }
  restart(app: string): Promise<DeploymentView> {
    return this.request('POST', `/api/v1/apps/${seg(app)}/restart`);
  }

  async logs(app: string, opts: { tail: number; process?: string | undefined }): Promise<LogLine[]> {
    const res = await this.request<{ lines: LogLine[] }>('GET', `/api/v1/apps/${seg(app)}/logs`, {
      query: { tail: opts.tail, process: opts.process },
    });
    return res.lines;
  }
  followLogs(
    app: string,
    opts: { tail: number; process?: string | undefined },
    signal?: AbortSignal,
  ): AsyncGenerator<SseEvent> {
    return this.events(
      `/api/v1/apps/${seg(app)}/logs`,
      { tail: opts.tail, follow: 'true', process: opts.process },
      signal,
    );
  }
}
