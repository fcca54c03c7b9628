import { request } from 'node:http';
import { connect } from 'node:net';
import type { HealthcheckSpec, HttpCheck } from '@minipaas/core';

/** Dokku's defaults for app.json checks. */
export const CHECK_DEFAULTS = { attempts: 5, timeoutMs: 5000, waitMs: 5000, initialDelayMs: 0 } as const;

/** The largest body a check reads (a `content` match beyond it fails). */
const MAX_CHECK_BODY = 1024 * 1024;

/** Outcome of one try of an app.json check. */
export type CheckResult =
  | { ok: true }
  | {
      ok: false;
      /** One line, e.g. `answered 404` or `body does not contain "ok"`. */
      reason: string;
      /** False when nothing listens on the port yet (a starting app): such tries do not use up attempts. */
      answered: boolean;
    };

/** One health probe: TCP connect, or an HTTP GET of `hc.path` answering < 500. */
export function probe(port: number, hc?: HealthcheckSpec): Promise<boolean> {
  const timeout = hc?.timeoutMs ?? 2000;
  return new Promise((resolve) => {
    if (hc?.path) {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: hc.path,
          method: 'GET',
          agent: false,
          timeout,
          headers: { 'user-agent': 'minipaas-agent/health' },
        },
        (res) => {
          res.resume();
          resolve((res.statusCode ?? 500) < 500);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve(false));
      req.end();
      return;
    }
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(timeout, () => {
      s.destroy();
      resolve(false);
    });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * One try of an app.json check: GET `check.path`; passes on a 2xx/3xx answer whose body contains
 * `check.content` (when set) within `check.timeoutMs`.
 */
export function httpCheck(port: number, check: HttpCheck): Promise<CheckResult> {
  const timeout = check.timeoutMs ?? CHECK_DEFAULTS.timeoutMs;
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: check.path,
        method: 'GET',
        agent: false,
        headers: { 'user-agent': 'minipaas-agent/health' },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 400) {
          res.resume();
          done({ ok: false, reason: `answered ${status}`, answered: true });
          req.destroy();
          return;
        }
        if (check.content === undefined) {
          res.resume();
          done({ ok: true });
          req.destroy();
          return;
        }
        const want = check.content;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
          if (body.includes(want)) {
            done({ ok: true });
            req.destroy();
          } else if (body.length > MAX_CHECK_BODY) {
            done({ ok: false, reason: `body does not contain ${JSON.stringify(want)}`, answered: true });
            req.destroy();
          }
        });
        res.on('end', () =>
          done(
            body.includes(want)
              ? { ok: true }
              : { ok: false, reason: `body does not contain ${JSON.stringify(want)}`, answered: true },
          ),
        );
        res.on('error', () => done({ ok: false, reason: 'connection lost', answered: true }));
      },
    );
    const timer = setTimeout(() => {
      done({ ok: false, reason: `no answer within ${timeout}ms`, answered: true });
      req.destroy();
    }, timeout);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err: NodeJS.ErrnoException) =>
      done({
        ok: false,
        reason: err.code === 'ECONNREFUSED' ? 'connection refused' : err.message,
        answered: err.code !== 'ECONNREFUSED',
      }),
    );
    req.end();
  });
}
