import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** A client connection written byte by byte, recording what the router did to it. */
export interface RawConn {
  socket: Socket;
  /** Everything received. */
  data: string;
  /** Set when the socket closed (by either side); `closedByUs` tells which. */
  closedAt: number | null;
  closedByUs: boolean;
  /** Resolves when the socket is closed. */
  closed: Promise<void>;
}

/** Opens a TCP connection to `port` on 127.0.0.1, from `localAddress` (any 127.0.0.x works on Linux). */
export function rawConnect(port: number, localAddress = '127.0.0.1'): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let onClosed: () => void = () => {};
    const conn: RawConn = {
      socket,
      data: '',
      closedAt: null,
      closedByUs: false,
      closed: new Promise<void>((r) => {
        onClosed = r;
      }),
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      conn.data += d;
    });
    // A refused or timed-out connection may end in a reset: that is what is being observed here.
    socket.on('error', () => {});
    socket.once('close', () => {
      conn.closedAt = Date.now();
      onClosed();
    });
    socket.once('connect', () => resolve(conn));
    socket.once('error', (err) => {
      if (socket.connecting) reject(err);
    });
  });
}

/** Closes `conn` from the client side (test cleanup). */
export function hangUp(conn: RawConn): void {
  if (conn.closedAt === null) conn.closedByUs = true;
  conn.socket.destroy();
}

/** Sends `text` on a fresh connection and returns all that comes back until the server closes it. */
export async function rawRequest(port: number, text: string, localAddress?: string): Promise<RawResponse> {
  const conn = await rawConnect(port, localAddress);
  conn.socket.write(text);
  const timer = setTimeout(() => conn.socket.destroy(), 10_000);
  await conn.closed;
  clearTimeout(timer);
  return parseResponse(conn.data);
}

export interface RawResponse {
  status: number;
  /** Header names lower case; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: string;
}

/** Parses the first response in `raw` (status line, headers, the rest as body). */
export function parseResponse(raw: string): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const [status = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  return { status: Number(status.split(' ')[1] ?? 0), headers, body: end === -1 ? '' : raw.slice(end + 4) };
}

/** What the echo upstream saw of a request. */
export interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * An upstream app on 127.0.0.1 that answers every request with what it saw (JSON), answers
 * upgrades with a 101 carrying that (base64 JSON in `x-seen`) and then echoes the bytes, and counts
 * requests still open.
 */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  let open = 0;
  const upgraded = new Set<Duplex>();
  const server = createServer((req, res) => {
    open++;
    res.once('close', () => open--);
    if (req.url === '/response-hop') {
      res.writeHead(200, { connection: 'x-up-secret', 'x-up-secret': '1', 'x-up-kept': '1' });
      res.end('ok');
      return;
    }
    req.resume();
    req.once('end', () =>
      res.end(JSON.stringify({ url: req.url ?? '', headers: req.headers } satisfies Seen)),
    );
  });
  server.on('upgrade', (req, socket) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    const seen = Buffer.from(JSON.stringify({ url: req.url, headers: req.headers })).toString('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: test\r\nx-seen: ${seen}\r\n\r\n`,
    );
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    open: () => open,
    close: () =>
      new Promise<void>((r) => {
        for (const s of upgraded) s.destroy();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

export interface EchoUpstream {
  server: Server;
  port: number;
  /** Requests whose response has not closed yet. */
  open(): number;
  /** Closes the server and every connection, upgraded ones included. */
  close(): Promise<void>;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
