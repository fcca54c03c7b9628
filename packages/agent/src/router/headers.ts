/** The headers the router sends upstream and back: hop-by-hop headers dropped, forwarding headers set by the edge. */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { plainAddress } from '../connection-limits.ts';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
]);

/** Header names listed in `Connection` (lower case), or null when it names none but keep-alive/close. */
function connectionTokens(v: string | string[] | undefined): Set<string> | null {
  if (v === undefined) return null;
  const s = Array.isArray(v) ? v.join(',') : v;
  if (!s.includes(',')) {
    const t = s.trim().toLowerCase();
    return t === '' || t === 'keep-alive' || t === 'close' ? null : new Set([t]);
  }
  const named = new Set<string>();
  for (const t of s.split(',')) {
    const n = t.trim().toLowerCase();
    if (n) named.add(n);
  }
  return named;
}

/**
 * Copies headers without hop-by-hop ones, those named by `Connection` and, with `dropForwarding`,
 * the forwarding headers a client may not set (`Forwarded`, `X-Real-IP`, `X-Forwarded-*`).
 */
function copyHeaders(headers: IncomingHttpHeaders, dropForwarding: boolean): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const k of Object.keys(headers)) {
    const v = headers[k];
    if (v === undefined || HOP_BY_HOP.has(k) || named?.has(k)) continue;
    if (dropForwarding && (k === 'forwarded' || k === 'x-real-ip' || k.startsWith('x-forwarded-'))) continue;
    out[k] = v;
  }
  return out;
}

/** Copies headers without hop-by-hop ones (including those named by `Connection`). */
export function stripHopByHop(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  return copyHeaders(headers, false);
}

const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A `Forwarded` parameter value (RFC 7239): a token, or a quoted string. */
function forwardedValue(v: string): string {
  return TOKEN_RE.test(v) ? v : `"${v.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The headers sent upstream. The router is the edge: whatever forwarding headers the client sent
 * are dropped (they would let it claim any address) and set from what the router saw. `host` is
 * the authority the request was routed by (the Host header, or the absolute-form target's).
 */
export function forwardHeaders(
  req: IncomingMessage,
  host: string | undefined,
  prefix: string | undefined,
): OutgoingHttpHeaders {
  const h = copyHeaders(req.headers, true);
  const addr = plainAddress(req.socket.remoteAddress);
  h['x-forwarded-for'] = addr;
  h['x-real-ip'] = addr;
  h['x-forwarded-proto'] = 'http';
  let forwarded = `for=${addr === '' ? 'unknown' : addr.includes(':') ? `"[${addr}]"` : addr};proto=http`;
  if (host) {
    h.host = host;
    h['x-forwarded-host'] = host;
    forwarded += `;host=${forwardedValue(host)}`;
  }
  h.forwarded = forwarded;
  if (prefix) h['x-forwarded-prefix'] = prefix;
  return h;
}
