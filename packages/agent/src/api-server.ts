import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type AgentAppState,
  type AgentHealth,
  type AppSpec,
  appNameSchema,
  appSpecSchema,
  ERROR_CODES,
  type ErrorBody,
  formatIssues,
  isMinipaasError,
  type LogLine,
  MinipaasError,
} from '@minipaas/core';
import type { Logger } from 'pino';
import { type ExternalRoutes, MAX_EXTERNAL_TARGETS } from './external-routes.ts';
import type { LogStore } from './log-store.ts';
import type { Supervisor } from './supervisor.ts';

/** zod schema of the AppSpec body of `PUT /v1/apps/:name` (the single copy lives in `@minipaas/core`). */
export { appSpecSchema } from '@minipaas/core';

export interface ApiContext {
  supervisor: Supervisor;
  logs: LogStore;
  logger: Logger;
  health(): AgentHealth;
  /** Routes of apps other runtimes run (docker); absent: the routes API answers 404. */
  externalRoutes?: ExternalRoutes;
  /** Called by POST /v1/shutdown after the response is sent. */
  shutdown(): void;
}

const MAX_BODY = 1024 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown, logger: Logger): void {
  let e: MinipaasError;
  if (isMinipaasError(err)) e = err;
  else {
    logger.error({ err }, 'agent API error');
    e = new MinipaasError('MINIPAAS_ERR_INTERNAL');
  }
  const body: ErrorBody = { error: { code: e.code, message: e.message } };
  if (e.details !== undefined) body.error.details = e.details;
  if (!res.headersSent) send(res, ERROR_CODES[e.code].status, body);
  else res.destroy();
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY)
      throw new MinipaasError('MINIPAAS_ERR_PAYLOAD_TOO_LARGE', 'request body is larger than 1 MiB');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new MinipaasError('MINIPAAS_ERR_BAD_JSON');
  }
}

function appName(raw: string): string {
  const name = decodeURIComponent(raw);
  const r = appNameSchema.safeParse(name);
  if (!r.success) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', formatIssues(r.error));
  return name;
}

/** Handles one request of the agent protocol (see `@minipaas/core` agent-protocol.ts). */
export async function handleApi(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://agent');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/v1/health' && method === 'GET') return send(res, 200, ctx.health());
    if (path === '/v1/apps' && method === 'GET') return send(res, 200, ctx.supervisor.list());
    if (path === '/v1/shutdown' && method === 'POST') {
      send(res, 200, { ok: true });
      res.once('finish', () => ctx.shutdown());
      return;
    }
    const rm = /^\/v1\/routes\/([^/]+)$/.exec(path);
    if (rm && ctx.externalRoutes)
      return await externalRoute(ctx.externalRoutes, appName(rm[1] as string), method, req, res);
    const m = /^\/v1\/apps\/([^/]+)(\/restart|\/logs|\/watch|\/metrics)?$/.exec(path);
    if (m) {
      const name = appName(m[1] as string);
      const sub = m[2];
      if (!sub && method === 'GET') {
        const s = ctx.supervisor.get(name);
        if (!s)
          throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app ${name} is not running on this agent`);
        return send(res, 200, s);
      }
      if (!sub && method === 'PUT') {
        const body = await readJson(req);
        const r = appSpecSchema.safeParse(body);
        if (!r.success) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', formatIssues(r.error));
        if (r.data.name !== name) {
          throw new MinipaasError(
            'MINIPAAS_ERR_VALIDATION',
            `spec name ${r.data.name} does not match the path (${name})`,
          );
        }
        return send(res, 202, ctx.supervisor.apply(r.data as AppSpec));
      }
      if (!sub && method === 'DELETE') return send(res, 200, { stopped: await ctx.supervisor.remove(name) });
      if (sub === '/restart' && method === 'POST') return send(res, 202, ctx.supervisor.restart(name));
      if (sub === '/logs' && method === 'GET') return await streamLogs(ctx, name, url, req, res);
      if (sub === '/watch' && method === 'GET') return await watchApp(ctx, name, req, res);
      if (sub === '/metrics' && method === 'GET') return send(res, 200, ctx.supervisor.metrics(name));
    }
    throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `no route ${method} ${path}`);
  } catch (err) {
    sendError(res, err, ctx.logger);
  }
}

async function streamLogs(
  ctx: ApiContext,
  name: string,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const tailRaw = url.searchParams.get('tail');
  const tail = tailRaw === null ? 100 : Number(tailRaw);
  if (!Number.isInteger(tail) || tail < 0 || tail > 100_000) {
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'tail must be an integer between 0 and 100000');
  }
  const follow = ['1', 'true'].includes(url.searchParams.get('follow') ?? '');
  const proc = url.searchParams.get('process') ?? undefined;
  const sinceRaw = url.searchParams.get('since');
  let since: string | undefined;
  if (sinceRaw) {
    const d = new Date(sinceRaw);
    if (Number.isNaN(d.getTime()))
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'since must be an ISO date');
    since = d.toISOString();
  }
  const filter = { tail, ...(proc ? { process: proc } : {}), ...(since ? { since } : {}) };
  const buffered: LogLine[] = [];
  let live: ((l: LogLine) => void) | null = null;
  const unsubscribe = follow
    ? ctx.logs.subscribe(name, (l) => {
        if (proc && l.processType !== proc) return;
        if (live) live(l);
        else buffered.push(l);
      })
    : () => {};
  try {
    const lines = await ctx.logs.tail(name, filter);
    res.writeHead(200, {
      'content-type': 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
    });
    const seen = new Set(lines.map((l) => JSON.stringify(l)));
    res.write(lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    if (!follow) {
      res.end();
      return;
    }
    for (const l of buffered) {
      const s = JSON.stringify(l);
      if (!seen.has(s)) res.write(`${s}\n`);
    }
    buffered.length = 0;
    live = (l) => res.write(`${JSON.stringify(l)}\n`);
    await new Promise<void>((resolve) => {
      res.once('close', resolve);
      req.once('close', resolve);
    });
  } finally {
    unsubscribe();
  }
}

/**
 * `GET /v1/apps/:name/watch`: the app's state now, then one NDJSON line per change (identical states are
 * not repeated), until the client disconnects; the stream ends when the app is removed.
 */
async function watchApp(
  ctx: ApiContext,
  name: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  let last = '';
  const write = (state: AgentAppState | null): void => {
    if (state === null) {
      res.end();
      return;
    }
    const text = JSON.stringify(state);
    if (text === last) return;
    last = text;
    res.write(`${text}\n`);
  };
  const unsubscribe = ctx.supervisor.watch(name, write);
  const now = ctx.supervisor.get(name);
  if (!unsubscribe || !now) {
    unsubscribe?.();
    throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app ${name} is not running on this agent`);
  }
  try {
    res.writeHead(200, {
      'content-type': 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
    });
    write(now);
    await new Promise<void>((resolve) => {
      res.once('close', resolve);
      req.once('close', resolve);
    });
  } finally {
    unsubscribe();
  }
}

/**
 * `GET|PUT|DELETE /v1/routes/:app`: the ports the router sends an app's requests to when the agent does not
 * run the app (docker containers published on 127.0.0.1), with in-flight counts for draining.
 */
async function externalRoute(
  routes: ExternalRoutes,
  name: string,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (method === 'GET') return send(res, 200, routes.state(name));
  if (method === 'DELETE') {
    routes.remove(name);
    return send(res, 200, { app: name, ports: [], inFlight: {} });
  }
  if (method === 'PUT') {
    const body = (await readJson(req)) as { ports?: unknown } | null;
    const ports = body?.ports;
    if (
      !Array.isArray(ports) ||
      ports.length > MAX_EXTERNAL_TARGETS ||
      !ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536)
    ) {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `ports must be a list of at most ${MAX_EXTERNAL_TARGETS} TCP ports`,
      );
    }
    return send(res, 200, routes.put(name, ports as number[]));
  }
  throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `no route ${method} /v1/routes/${name}`);
}
