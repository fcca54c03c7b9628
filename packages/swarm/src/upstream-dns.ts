/**
 * A small authoritative DNS server for Caddy's dynamic upstreams (`dynamic_upstreams` with source `srv`),
 * so that the upstreams of a route change without a Caddy config load. Caddy on Linux binds a new
 * `SO_REUSEPORT` socket at every load and the kernel resets connections still queued on the old one
 * (docs/swarm.md, "Known limits"); answering SRV lookups instead keeps one config while tasks come and go.
 *
 * It answers, for names under its zone (default `minipaas.internal`):
 * - SRV for each name set with {@link UpstreamDns.set}: one record per `host:port` endpoint, whose target is
 *   a name that encodes the address (`n-10-0-0-5.ZONE`, `n6-fd00-0-0-0-0-0-0-1.ZONE`), because Go's
 *   resolver refuses SRV targets that are IP literals;
 * - A / AAAA for those encoded names (stateless: the address is in the name);
 * - NXDOMAIN for other names of the zone, REFUSED outside it.
 * TTLs are 0: Caddy caches per its own `refresh`. UDP answers that do not fit set TC and the same port
 * serves TCP. Malformed queries are dropped; nothing a client sends can stop the server.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv4, isIPv6, type Server, type Socket } from 'node:net';

/** Options of {@link UpstreamDns}. */
export interface UpstreamDnsOptions {
  /** Zone served (default `minipaas.internal`). */
  zone?: string;
  /** Address to listen on (default `127.0.0.1`). Caddy must reach it. */
  host?: string;
  /** Port, UDP and TCP (default 0: a free port, the same for both). */
  port?: number;
  /**
   * Called when a name of the zone that has no entry is asked for (a route whose endpoints are not known
   * yet): a chance to refresh them. Caddy asks again at its next refresh.
   */
  onMiss?: (name: string) => void;
}

const TYPE = { A: 1, AAAA: 28, SRV: 33, ANY: 255 } as const;
const RCODE = { OK: 0, FORMERR: 1, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** Largest UDP answer without EDNS (RFC 1035). */
const UDP_PLAIN = 512;
/** Largest UDP answer even when a client offers more (the DNS flag day 2020 value). */
const UDP_MAX = 1232;
const MAX_TCP_QUERY = 4096;

interface Question {
  id: number;
  rd: boolean;
  /** The question section, as sent (echoed in the answer). */
  raw: Buffer;
  labels: string[];
  type: number;
  /** UDP payload size the client accepts (EDNS0), or 512. */
  udpSize: number;
}

/** `host:port`, `[v6]:port` → [host, port], or undefined. */
function splitEndpoint(ep: string): [string, number] | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(ep) ?? /^([^:]+):(\d{1,5})$/.exec(ep);
  if (!m) return undefined;
  const port = Number(m[2]);
  const host = m[1] as string;
  if (port < 1 || port > 65535 || !(isIPv4(host) || isIPv6(host))) return undefined;
  return [host, port];
}

/** The fully expanded eight groups of an IPv6 address. */
function ipv6Groups(ip: string): number[] {
  const [head, tail] = ip.includes('::') ? (ip.split('::') as [string, string]) : [ip, undefined];
  const part = (s: string): number[] => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const h = part(head);
  const t = tail === undefined ? [] : part(tail);
  return [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
}

function parseQuery(msg: Buffer): Question | undefined {
  if (msg.length < 12) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // an answer, not a query
  if (msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let o = 12;
  for (;;) {
    const len = msg[o];
    if (len === undefined || len > 63) return undefined; // no compression in questions
    o++;
    if (len === 0) break;
    if (o + len > msg.length || labels.length >= 127) return undefined;
    labels.push(
      msg
        .subarray(o, o + len)
        .toString('latin1')
        .toLowerCase(),
    );
    o += len;
  }
  if (o + 4 > msg.length) return undefined;
  const type = msg.readUInt16BE(o);
  const raw = msg.subarray(12, o + 4);
  o += 4;
  // EDNS0: an OPT record in the additional section carries the client's UDP payload size.
  let udpSize = UDP_PLAIN;
  if (msg.readUInt16BE(10) > 0 && msg[o] === 0 && o + 5 <= msg.length && msg.readUInt16BE(o + 1) === 41)
    udpSize = Math.min(Math.max(msg.readUInt16BE(o + 3), UDP_PLAIN), UDP_MAX);
  return { id: msg.readUInt16BE(0), rd: Boolean(flags & 0x0100), raw, labels, type, udpSize };
}

function encodeName(name: string): Buffer {
  const parts = name.split('.').filter(Boolean);
  return Buffer.concat([
    ...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])),
    Buffer.from([0]),
  ]);
}

/** One resource record whose owner is the question's name (a pointer to offset 12). */
function record(type: number, rdata: Buffer): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(0xc00c, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt16BE(1, 4); // class IN
  h.writeUInt32BE(0, 6); // TTL 0: Caddy's refresh decides
  h.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([h, rdata]);
}

function answer(q: Question, rcode: number, records: Buffer[], truncated = false): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(q.id, 0);
  // QR, AA, RD echoed, TC when truncated
  h.writeUInt16BE(0x8400 | (q.rd ? 0x0100 : 0) | (truncated ? 0x0200 : 0) | rcode, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(records.length, 6);
  return Buffer.concat([h, q.raw, ...records]);
}

export class UpstreamDns {
  readonly zone: string;
  readonly #host: string;
  readonly #port: number;
  readonly #onMiss: ((name: string) => void) | undefined;
  #names = new Map<string, [string, number][]>();
  #udp: UdpSocket | undefined;
  #tcp: Server | undefined;
  readonly #conns = new Set<Socket>();
  #bound: { host: string; port: number } | undefined;

  constructor(o: UpstreamDnsOptions = {}) {
    this.zone = (o.zone ?? 'minipaas.internal').toLowerCase().replace(/\.$/, '');
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(this.zone))
      throw new Error(`bad DNS zone ${JSON.stringify(o.zone)}`);
    this.#host = o.host ?? '127.0.0.1';
    this.#port = o.port ?? 0;
    this.#onMiss = o.onMiss;
  }

  /** Starts serving on UDP and TCP (the same port); returns where. */
  async start(): Promise<{ host: string; port: number }> {
    if (this.#bound) return this.#bound;
    // A free port for both protocols: take UDP's, then bind TCP to it (retried when TCP's is taken).
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket(isIPv6(this.#host) ? 'udp6' : 'udp4');
      udp.on('message', (msg, rinfo) => this.#onUdp(udp, msg, rinfo.port, rinfo.address));
      udp.on('error', () => undefined);
      await new Promise<void>((res, rej) => {
        udp.once('error', rej);
        udp.bind(this.#port, this.#host, () => res());
      });
      const port = udp.address().port;
      const tcp = createServer((s) => this.#onTcp(s));
      try {
        await new Promise<void>((res, rej) => {
          tcp.once('error', rej);
          tcp.listen(port, this.#host, () => res());
        });
      } catch (err) {
        udp.close();
        if (this.#port !== 0 || attempt >= 5) throw err;
        continue;
      }
      this.#udp = udp;
      this.#tcp = tcp;
      this.#bound = { host: this.#host, port };
      return this.#bound;
    }
  }

  /**
   * Where Caddy's `resolver.addresses` should point, e.g. `udp/127.0.0.1:5380`: the bound address, or the
   * configured one when another process serves it (then the port must not be 0).
   */
  get resolverAddress(): string {
    const at = this.#bound ?? (this.#port > 0 ? { host: this.#host, port: this.#port } : undefined);
    if (!at) throw new Error('UpstreamDns is not started and has no fixed port');
    const h = isIPv6(at.host) ? `[${at.host}]` : at.host;
    return `udp/${h}:${at.port}`;
  }

  /** The DNS name for `key` (a route), e.g. `web-app.minipaas.internal`. */
  nameFor(key: string): string {
    const label = key
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 63);
    return `${label || 'route'}.${this.zone}`;
  }

  /** Replaces every name's endpoints (`host:port` with an IP host; anything else is skipped). */
  replace(entries: ReadonlyMap<string, readonly string[]>): void {
    const next = new Map<string, [string, number][]>();
    for (const [name, eps] of entries) {
      const list = eps.map(splitEndpoint).filter((e): e is [string, number] => e !== undefined);
      next.set(name.toLowerCase().replace(/\.$/, ''), list);
    }
    this.#names = next;
  }

  /** The endpoints served for `name`. */
  get(name: string): string[] {
    return (this.#names.get(name.toLowerCase().replace(/\.$/, '')) ?? []).map(([h, p]) =>
      isIPv6(h) ? `[${h}]:${p}` : `${h}:${p}`,
    );
  }

  async close(): Promise<void> {
    for (const s of this.#conns) s.destroy();
    await Promise.all([
      new Promise<void>((res) => (this.#udp ? this.#udp.close(() => res()) : res())),
      new Promise<void>((res) => (this.#tcp ? this.#tcp.close(() => res()) : res())),
    ]);
    this.#udp = undefined;
    this.#tcp = undefined;
    this.#bound = undefined;
  }

  /** The answer to one query, or undefined to drop it. */
  respond(msg: Buffer, maxBytes: number | 'udp'): Buffer | undefined {
    const q = parseQuery(msg);
    if (!q) return undefined;
    const opcode = (msg.readUInt16BE(2) >> 11) & 0xf;
    if (opcode !== 0) return answer(q, RCODE.NOTIMP, []);
    const name = q.labels.join('.');
    const inZone = name === this.zone || name.endsWith(`.${this.zone}`);
    if (!inZone) return answer(q, RCODE.REFUSED, []);
    const records = this.#records(q, name);
    if (records === undefined) return answer(q, RCODE.NXDOMAIN, []);
    const full = answer(q, RCODE.OK, records);
    const limit = maxBytes === 'udp' ? q.udpSize : maxBytes;
    return full.length <= limit ? full : answer(q, RCODE.OK, [], true);
  }

  /** The records for `name`, or undefined when the name does not exist. */
  #records(q: Question, name: string): Buffer[] | undefined {
    const first = q.labels[0] ?? '';
    const rest = q.labels.slice(1).join('.');
    if (rest === this.zone && /^n-\d{1,3}(-\d{1,3}){3}$/.test(first)) {
      const ip = first.slice(2).split('-').map(Number);
      if (ip.some((b) => b > 255)) return undefined;
      return q.type === TYPE.A || q.type === TYPE.ANY ? [record(TYPE.A, Buffer.from(ip))] : [];
    }
    if (rest === this.zone && /^n6(-[0-9a-f]{1,4}){8}$/.test(first)) {
      const rdata = Buffer.alloc(16);
      const groups = first.split('-').slice(1);
      for (const [i, g] of groups.entries()) rdata.writeUInt16BE(Number.parseInt(g, 16), i * 2);
      return q.type === TYPE.AAAA || q.type === TYPE.ANY ? [record(TYPE.AAAA, rdata)] : [];
    }
    const eps = this.#names.get(name);
    if (eps === undefined) {
      if (name === this.zone) return [];
      this.#onMiss?.(name);
      return undefined;
    }
    if (q.type !== TYPE.SRV && q.type !== TYPE.ANY) return [];
    return eps.map(([host, port]) => {
      const target = encodeName(`${this.#targetLabel(host)}.${this.zone}`);
      const rdata = Buffer.alloc(6 + target.length);
      rdata.writeUInt16BE(0, 0); // priority
      rdata.writeUInt16BE(1, 2); // weight
      rdata.writeUInt16BE(port, 4);
      target.copy(rdata, 6);
      return record(TYPE.SRV, rdata);
    });
  }

  #targetLabel(host: string): string {
    if (isIPv4(host)) return `n-${host.replaceAll('.', '-')}`;
    return `n6-${ipv6Groups(host)
      .map((g) => g.toString(16))
      .join('-')}`;
  }

  #onUdp(udp: UdpSocket, msg: Buffer, port: number, address: string): void {
    const out = this.respond(msg, 'udp');
    if (out) udp.send(out, port, address, () => undefined);
  }

  #onTcp(s: Socket): void {
    this.#conns.add(s);
    s.setTimeout(10_000, () => s.destroy());
    s.on('error', () => undefined);
    s.on('close', () => this.#conns.delete(s));
    let buf = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len > MAX_TCP_QUERY) {
          s.destroy();
          return;
        }
        if (buf.length < 2 + len) return;
        const out = this.respond(buf.subarray(2, 2 + len), 65_535);
        buf = buf.subarray(2 + len);
        if (!out) {
          s.destroy();
          return;
        }
        const framed = Buffer.alloc(2 + out.length);
        framed.writeUInt16BE(out.length, 0);
        out.copy(framed, 2);
        s.write(framed);
      }
    });
  }
}
