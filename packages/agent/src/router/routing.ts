/** Where a request goes: host routing (`{app}.{base}`), path routing (`/apps/{app}/…`), absolute-form targets. */
import { APP_NAME_RE } from '@minipaas/core';

export type Route =
  | { kind: 'app'; app: string; path: string; prefix?: string }
  | { kind: 'redirect'; location: string }
  | { kind: 'landing' }
  | { kind: 'unknown' };

function hostName(host: string | undefined): string {
  if (!host) return '';
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const i = h.lastIndexOf(':');
  return (i === -1 ? h : h.slice(0, i)).replace(/\.$/, '');
}

/** Decides where a request goes: `{app}.{base}` host routing first, then `/apps/{app}/…` path routing. */
export function routeRequest(hostHeader: string | undefined, url: string, baseDomain: string): Route {
  const host = hostName(hostHeader);
  const base = baseDomain.toLowerCase();
  if (host.endsWith(`.${base}`)) {
    const label = host.slice(0, -(base.length + 1));
    return APP_NAME_RE.test(label) ? { kind: 'app', app: label, path: url } : { kind: 'unknown' };
  }
  const m = /^\/apps\/([^/?#]+)(\/[^?#]*)?(\?.*)?$/.exec(url);
  if (m) {
    const app = m[1] as string;
    if (!APP_NAME_RE.test(app)) return { kind: 'unknown' };
    if (m[2] === undefined) return { kind: 'redirect', location: `/apps/${app}/${m[3] ?? ''}` };
    return { kind: 'app', app, path: `${m[2]}${m[3] ?? ''}`, prefix: `/apps/${app}` };
  }
  if (url === '/' || url.startsWith('/?')) return { kind: 'landing' };
  return { kind: 'unknown' };
}

/**
 * Splits an absolute-form request target (`GET http://app.example.com/x HTTP/1.1`, RFC 9112
 * §3.2.2) into its authority and origin-form path; null when it is no http(s) URL or carries
 * userinfo. The router accepts absolute-form as RFC 9112 requires of a server: it routes by the
 * target's authority, ignoring the Host header, and sends the app the origin-form path with Host
 * set to that authority, so the app sees the request the router routed. Other forms (`*`,
 * authority-form) are answered 400.
 */
export function absoluteTarget(url: string): { host: string; path: string } | null {
  const m = /^https?:\/\/([^/?#@]+)([/?][^#]*)?$/i.exec(url);
  if (!m) return null;
  const path = m[2] ?? '/';
  return { host: m[1] as string, path: path.charCodeAt(0) === 63 /* ? */ ? `/${path}` : path };
}
