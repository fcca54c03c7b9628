/** The reverse proxy in front of the apps of this node: connection limits, proxying with retries of idempotent requests on reused sockets, WebSocket upgrades. */
import {
  createServer,
  Agent as HttpAgent,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ClientConnectionLimiter, connectionCap, fdSoftLimit } from '../connection-limits.ts';
import { forwardHeaders, stripHopByHop } from './headers.ts';
import { BAD_TARGET, page, rawError } from './pages.ts';
import { absoluteTarget, type Route, routeRequest } from './routing.ts';

/** An upstream the router can send requests to (an app's healthy web instance). */
export interface RouteTarget {
  port: number | null;
  /** Requests currently proxied to this target; the router keeps it up to date. */
  inFlight: number;
}

/** Options of the router. */
export interface RouterOptions {
  /** Interface to bind (default `0.0.0.0`). */
  host?: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** Apps are served at `{app}.{baseDomain}`. */
  baseDomain: string;
  /** Healthy targets of an app, or null when no such app exists. Called on every request. */
  resolve(app: string): RouteTarget[] | null;
  logger?: Logger;
  /**
   * Time a client has to send the complete request headers, from the connection's first byte (or
   * its opening) on; slowloris clients are answered 408 and closed. Capped at `requestTimeoutMs`.
   * Default 10 s (`router.headersTimeoutMs`).
   */
  headersTimeoutMs?: number;
  /**
   * Time a client has to send the complete request, headers and body: a body trickling in after the
   * headers of a proxied request is cut here (408, connection closed, upstream request aborted). The
   * response may take longer; WebSocket connections are not cut. Default 60 s
   * (`router.requestTimeoutMs`).
   */
  requestTimeoutMs?: number;
  /** A keep-alive connection idle this long between requests is closed. Default 60 s (`router.idleTimeoutMs`). */
  idleTimeoutMs?: number;
  /**
   * Open connections (WebSockets included) one client address may hold; more are closed at once.
   * Behind another proxy every client shares its address: raise this. Default 256
   * (`router.maxConnectionsPerClient`).
   */
  maxConnectionsPerClient?: number;
  /**
   * Open connections the router holds in all (WebSockets included); more are closed at once. Capped
   * to a safe share of the process's file-descriptor soft limit (see `connectionCap`). Default 8192
   * (`router.maxConnections`).
   */
  maxConnections?: number;
}

export interface RouterHandle {
  server: Server;
  host: string;
  port: number;
  /** The global connection limit in force (`maxConnections` after the file-descriptor cap). */
  maxConnections: number;
  close(): Promise<void>;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** The reverse proxy in front of the apps of this node. */
export class Router {
  private readonly opts: RouterOptions;
  private readonly agent = new HttpAgent({ keepAlive: true, maxFreeSockets: 256, scheduling: 'lifo' });
  private readonly rr = new Map<string, number>();
  private readonly upgraded = new Set<Socket>();
  private readonly perClient: ClientConnectionLimiter;
  private dropped = 0;
  private lastLimitWarning = 0;
  readonly server: Server;
  /** The global connection limit in force (`maxConnections` capped below the descriptor limit). */
  readonly maxConnections: number;

  constructor(opts: RouterOptions) {
    this.opts = opts;
    const requestTimeout = opts.requestTimeoutMs ?? 60_000;
    // node:http refuses a headers timeout above the request timeout.
    const headersTimeout = Math.min(opts.headersTimeoutMs ?? 10_000, requestTimeout);
    this.server = createServer(
      {
        headersTimeout,
        requestTimeout,
        // How often node:http looks for requests past those timeouts (its default is 30 s, which
        // would let a slowloris client hold a connection three times the headers timeout).
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
        keepAliveTimeout: opts.idleTimeoutMs ?? 60_000,
      },
      (req, res) => this.handle(req, res),
    );
    const configured = opts.maxConnections ?? 8192;
    const fds = fdSoftLimit();
    this.maxConnections = connectionCap(configured, fds);
    if (this.maxConnections < configured) {
      opts.logger?.warn(
        { configured, fdSoftLimit: fds, maxConnections: this.maxConnections },
        'router.maxConnections lowered to stay below the file-descriptor limit',
      );
    }
    // Over the global limit node:net closes a new connection as soon as it is accepted ('drop').
    this.server.maxConnections = this.maxConnections;
    this.server.on('drop', () => this.limitHit('maxConnections'));
    this.perClient = new ClientConnectionLimiter(opts.maxConnectionsPerClient ?? 256);
    this.server.on('connection', (socket: Socket) => {
      if (!this.perClient.admit(socket)) {
        socket.destroy();
        this.limitHit('maxConnectionsPerClient');
      }
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    // No 'clientError' listener: node:http's own answers 400/408/431 unless a response has started,
    // and closes the connection (a request past its timeout ends here).
  }

  /** Counts a refused connection; warns at most every 10 s, with the count since the last warning. */
  private limitHit(limit: 'maxConnections' | 'maxConnectionsPerClient'): void {
    this.dropped++;
    const now = Date.now();
    if (now - this.lastLimitWarning < 10_000) return;
    this.lastLimitWarning = now;
    this.opts.logger?.warn({ limit, refused: this.dropped }, 'router refusing connections over its limit');
    this.dropped = 0;
  }

  /** Picks the next target round-robin, skipping `tried`. */
  private pick(app: string, targets: RouteTarget[], tried: Set<RouteTarget>): RouteTarget | null {
    const usable = targets.filter((t) => t.port !== null && !tried.has(t));
    if (usable.length === 0) return null;
    const n = this.rr.get(app) ?? 0;
    this.rr.set(app, (n + 1) % 1_000_000_000);
    return usable[n % usable.length] as RouteTarget;
  }

  private resolveOr(res: ServerResponse | null, route: Route & { kind: 'app' }): RouteTarget[] | null {
    const targets = this.opts.resolve(route.app);
    if (targets === null) {
      if (res) page(res, 404, 'App not found', `There is no app called "${route.app}" on this server.`);
      return null;
    }
    if (targets.length === 0) {
      if (res) {
        page(
          res,
          503,
          'App unavailable',
          `The app "${route.app}" has no healthy instance right now. Try again shortly.`,
          {
            'retry-after': '5',
          },
        );
      }
      return null;
    }
    return targets;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    let host = req.headers.host;
    let url = req.url ?? '/';
    if (url.charCodeAt(0) !== 47 /* / */) {
      const t = absoluteTarget(url);
      if (!t) {
        page(res, 400, 'Bad request', BAD_TARGET);
        return;
      }
      host = t.host;
      url = t.path;
    }
    const route = routeRequest(host, url, this.opts.baseDomain);
    if (route.kind === 'redirect') {
      res.writeHead(308, { location: route.location, 'content-length': 0 });
      res.end();
      return;
    }
    if (route.kind === 'landing') {
      page(
        res,
        404,
        'MiniPaaS',
        `No app is served at this address. Apps are reachable at http://APP.${this.opts.baseDomain}/ or at /apps/APP/.`,
      );
      return;
    }
    if (route.kind === 'unknown') {
      page(res, 404, 'Not found', 'No app is served at this address.');
      return;
    }
    const targets = this.resolveOr(res, route);
    if (!targets) return;
    this.proxy(req, res, route, targets, host);
  }

  private proxy(
    req: IncomingMessage,
    res: ServerResponse,
    route: Route & { kind: 'app' },
    targets: RouteTarget[],
    host: string | undefined,
  ): void {
    const headers = forwardHeaders(req, host, route.prefix);
    const method = req.method ?? 'GET';
    const tried = new Set<RouteTarget>();
    let current: { target: RouteTarget; up: ReturnType<typeof request> } | null = null;
    const cl = req.headers['content-length'];
    const hasBody = (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined;
    let finished = false;
    let attempts = 0;
    const release = () => {
      if (current) {
        current.target.inFlight--;
        current = null;
      }
    };
    res.once('close', () => {
      finished = true;
      if (current && !res.writableFinished) current.up.destroy();
      release();
    });

    const attempt = (): void => {
      const target = this.pick(route.app, targets, tried);
      if (!target) {
        page(res, 502, 'Bad gateway', `The app "${route.app}" did not answer.`);
        return;
      }
      tried.add(target);
      target.inFlight++;
      let connected = false;
      let responded = false;
      const up = request({
        host: '127.0.0.1',
        port: target.port as number,
        method,
        path: route.path,
        headers,
        agent: this.agent,
        setHost: false,
      });
      current = { target, up };
      up.on('socket', (s: Socket) => {
        const go = () => {
          connected = true;
          if (!hasBody) up.end();
          else req.pipe(up);
        };
        if (s.connecting) s.once('connect', go);
        else go();
      });
      up.on('response', (ur) => {
        responded = true;
        if (finished) {
          ur.resume();
          return;
        }
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, stripHopByHop(ur.headers));
        ur.pipe(res);
        ur.on('error', () => res.destroy());
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        if (finished) return;
        const neverSent = !connected;
        const staleKeepAlive =
          up.reusedSocket && !responded && !hasBody && IDEMPOTENT.has(method) && err.code === 'ECONNRESET';
        if (!responded && (neverSent || staleKeepAlive)) {
          release();
          if (staleKeepAlive) tried.delete(target);
          if (++attempts <= targets.length + 3) {
            attempt();
            return;
          }
        }
        this.opts.logger?.warn({ app: route.app, port: target.port, err: err.message }, 'upstream error');
        if (!res.headersSent)
          page(res, 502, 'Bad gateway', `The app "${route.app}" did not answer (${err.code ?? 'error'}).`);
        else res.destroy();
      });
    };
    attempt();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let host = req.headers.host;
    let url = req.url ?? '/';
    if (url.charCodeAt(0) !== 47 /* / */) {
      const t = absoluteTarget(url);
      if (!t) {
        rawError(socket, 400, 'Bad Request');
        return;
      }
      host = t.host;
      url = t.path;
    }
    const route = routeRequest(host, url, this.opts.baseDomain);
    if (route.kind !== 'app') {
      rawError(socket, 404, 'Not Found');
      return;
    }
    const targets = this.opts.resolve(route.app);
    if (targets === null || targets.length === 0) {
      rawError(socket, targets === null ? 404 : 503, targets === null ? 'Not Found' : 'Service Unavailable');
      return;
    }
    const headers = forwardHeaders(req, host, route.prefix);
    headers.connection = 'Upgrade';
    if (req.headers.upgrade) headers.upgrade = req.headers.upgrade;
    let lines = `${req.method ?? 'GET'} ${route.path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) lines += `${k}: ${one}\r\n`;
    }
    lines += '\r\n';
    const tried = new Set<RouteTarget>();
    socket.on('error', () => {});
    const attempt = (): void => {
      const target = this.pick(route.app, targets, tried);
      if (!target) {
        rawError(socket, 502, 'Bad Gateway');
        return;
      }
      tried.add(target);
      const up = connect({ host: '127.0.0.1', port: target.port as number });
      let connected = false;
      up.once('connect', () => {
        connected = true;
        this.upgraded.add(up);
        up.setNoDelay(true);
        up.write(lines);
        if (head.length > 0) up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      up.on('error', () => {
        if (!connected) return attempt();
        socket.destroy();
      });
      up.on('close', () => {
        this.upgraded.delete(up);
        socket.destroy();
      });
      socket.on('close', () => up.destroy());
    };
    attempt();
  }

  async listen(): Promise<RouterHandle> {
    const host = this.opts.host ?? '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port: this.opts.port }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    return {
      server: this.server,
      host,
      port,
      maxConnections: this.maxConnections,
      close: () => this.close(),
    };
  }

  async close(): Promise<void> {
    for (const s of this.upgraded) s.destroy();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      setTimeout(() => this.server.closeAllConnections(), 1000).unref();
    });
    this.agent.destroy();
  }
}

/** Starts a router; returns once it listens. */
export function startRouter(opts: RouterOptions): Promise<RouterHandle> {
  return new Router(opts).listen();
}
