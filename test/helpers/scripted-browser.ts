/**
 * A tiny scripted browser for login flows: real HTTP with fetch, redirects followed by hand, cookies kept
 * per origin (enough for the providers and the platform running on different loopback ports).
 */
export class ScriptedBrowser {
  private readonly jar = new Map<string, Map<string, string>>();

  cookie(origin: string, name: string): string | undefined {
    return this.jar.get(origin)?.get(name);
  }

  setCookie(origin: string, name: string, value: string): void {
    const c = this.jar.get(origin) ?? new Map<string, string>();
    c.set(name, value);
    this.jar.set(origin, c);
  }

  /** One request, no redirect followed; stores the cookies it sets (a Max-Age=0 or empty value clears). */
  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const u = new URL(url);
    const cookies = this.jar.get(u.origin);
    const headers = new Headers(init.headers);
    if (cookies?.size) headers.set('cookie', [...cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(u, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const jar = this.jar.get(u.origin) ?? new Map<string, string>();
      const expired = attrs.some(
        (a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a),
      );
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
      this.jar.set(u.origin, jar);
    }
    return res;
  }

  /**
   * Follows redirects from `url` until one points at a URL starting with `stopAt` (returned, not
   * requested) or a response is not a redirect (returned as the last response).
   */
  async follow(
    url: string,
    stopAt?: string,
  ): Promise<{ stoppedAt: URL | null; last: Response; hops: string[] }> {
    let next = url;
    const hops: string[] = [];
    for (let i = 0; i < 20; i++) {
      if (stopAt && next.startsWith(stopAt))
        return { stoppedAt: new URL(next), last: new Response(null), hops };
      hops.push(next);
      const res = await this.request(next);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) return { stoppedAt: null, last: res, hops };
      await res.arrayBuffer();
      next = new URL(location, next).toString();
    }
    throw new Error(`too many redirects: ${hops.join(' -> ')}`);
  }
}
