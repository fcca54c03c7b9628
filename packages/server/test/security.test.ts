/**
 * The API as an attacker sees it: every route with every spelling of its path (percent-encoded,
 * double-encoded, mixed case, dot segments, double slashes) over a real socket, prototype names,
 * limits, hostile ids and bodies. Every rejected request must leave the stored state unchanged.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { loadConfig, type MinipaasConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import pino from 'pino';
import { c as tarCreate } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

let home: string;
let config: MinipaasConfig;
let agent: AgentHandle;
let cp: ControlPlane;
let port: number;
let token: string;
let auth: { authorization: string };

const UUID = '3f2b8a9c-1d4e-4f6a-9b7c-2e5d8f1a3c6b';

/** Sends a request with the path exactly as given (no normalisation), over a real socket. */
function raw(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const h =
      body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    const req = request({ host: '127.0.0.1', port, method, path, headers: h, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Every way of spelling `path` that a router or a proxy might map back to it. */
function spellings(path: string): string[] {
  const segs = path.split('/').slice(1);
  const enc = (s: string) => `%${s.charCodeAt(0).toString(16)}${s.slice(1)}`;
  const encAll = (s: string) => [...s].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).join('');
  const out = new Set<string>([
    path,
    `/${segs.map(enc).join('/')}`, // %61pi/%761/%61pps
    `/${encAll(segs[0] as string)}/${segs.slice(1).join('/')}`, // %61%70%69
    `/${(segs[0] as string).slice(0, 1)}%${(segs[0] as string).charCodeAt(1).toString(16)}${(segs[0] as string).slice(2)}/${segs.slice(1).join('/')}`, // a%70i
    `/%25${(segs[0] as string).charCodeAt(0).toString(16)}${(segs[0] as string).slice(1)}/${segs.slice(1).join('/')}`, // double-encoded
    path.toUpperCase(),
    `/${(segs[0] as string).toUpperCase()}/${segs.slice(1).join('/')}`,
    `/${segs[0]}/./${segs.slice(1).join('/')}`,
    `/${segs[0]}/x/../${segs.slice(1).join('/')}`,
    `/${segs[0]}/%2e%2e/${segs[0]}/${segs.slice(1).join('/')}`,
    `/${path}`,
    path.replace(/\//g, '//'),
    `/${segs.join('%2F')}`,
    `${path}/`,
    `${path}?x=1`,
    `${path};x=1`,
    `${path}%00`,
  ]);
  return [...out];
}

/** Everything the platform stores, to prove that rejected requests change nothing. */
async function snapshot(): Promise<unknown> {
  // Let rollouts started by earlier accepted requests finish first (a rejected one starts none).
  const deadline = Date.now() + 20_000;
  while (agent.supervisor.list().some((a) => a.rollout.status === 'rolling') && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 25));
  const db = cp.ctx.store.db;
  const [apps, projects, releases, deployments] = await Promise.all([
    db.selectFrom('apps').selectAll().orderBy('id').execute(),
    db.selectFrom('projects').selectAll().orderBy('id').execute(),
    db.selectFrom('releases').selectAll().orderBy('id').execute(),
    db.selectFrom('deployments').selectAll().orderBy('id').execute(),
  ]);
  // What the runtime was asked to run (instances draining after an earlier accepted request may
  // still change their status meanwhile; the desired state must not).
  const runtime = agent.supervisor
    .list()
    .map((a) => ({ name: a.name, release: a.release, rollout: a.rollout }));
  return JSON.parse(JSON.stringify({ apps, projects, releases, deployments, runtime }));
}

/** Runs `send`, expects a 4xx and an unchanged store, and returns the response. */
async function rejected(
  send: () => Promise<{ statusCode: number; body: string }>,
  status?: number,
): Promise<{ statusCode: number; body: string; json: () => { error: { code: string; message: string } } }> {
  const before = await snapshot();
  const r = await send();
  expect(r.statusCode, r.body.slice(0, 300)).toBeGreaterThanOrEqual(400);
  expect(r.statusCode, r.body.slice(0, 300)).toBeLessThan(500);
  if (status !== undefined) expect(r.statusCode, r.body.slice(0, 300)).toBe(status);
  expect(await snapshot()).toEqual(before);
  return { ...r, json: () => JSON.parse(r.body) };
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'mp-security-'));
  const portMin = 23000 + Math.floor(Math.random() * 80) * 10;
  port = await freePort();
  config = await loadConfig({
    MINIPAAS_HOME: home,
    MINIPAAS_API_PORT: String(port),
    MINIPAAS_APP_PORT_MIN: String(portMin),
    MINIPAAS_APP_PORT_MAX: String(portMin + 9),
    MINIPAAS_ROUTER_PORT: String(await freePort()),
    MINIPAAS_MAX_INSTANCES_PER_APP: '4',
    MINIPAAS_MAX_INSTANCES: '6',
    MINIPAAS_MAX_PROCESS_TYPES: '3',
    MINIPAAS_STOP_GRACE_MS: '1000',
    MINIPAAS_LOG_LEVEL: 'silent',
  });
  const logger = pino({ level: 'silent' });
  agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
  cp = await createControlPlane({
    config,
    drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
    logger,
    dataDir: 'memory://',
    reconcile: false,
  });
  await cp.listen();
  token = cp.createdAdminToken as string;
  auth = { authorization: `Bearer ${token}` };
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await agent?.close();
  await rm(home, { recursive: true, force: true });
});

describe('authentication is a property of every route', () => {
  it('serves only the health checks without a token, whatever the spelling of the path', async () => {
    const publicRoutes = cp.routes.filter((r) => r.public).map((r) => r.url);
    // The git smart-HTTP endpoint authenticates itself (HTTP Basic with an API token; git-push.test.ts),
    // and so does the webhook receiver (its token and signature; git-webhooks.test.ts).
    const selfAuthenticated = [
      '/git/:repo/git-receive-pack',
      '/git/:repo/git-upload-pack',
      '/git/:repo/info/refs',
      '/api/v1/webhooks/:app/:token',
      '/api/webhooks/:project/:token',
      // Browser login (login.test.ts): the landing page, password login with its lockout, logout and the
      // session (the session cookie and CSRF token), GitHub/OIDC (the provider's signed answer).
      '/',
      '/auth/login',
      '/auth/logout',
      '/auth/session',
      '/auth/github',
      '/auth/github/callback',
      '/auth/oidc/:name',
      '/auth/oidc/:name/callback',
    ];
    expect([...new Set(publicRoutes)].filter((u) => !selfAuthenticated.includes(u)).sort()).toEqual([
      '/health',
      '/health/live',
      '/health/ready',
    ]);
    const api = cp.routes.filter((r) => !r.public);
    expect(api.length).toBeGreaterThan(15);
    let sent = 0;
    for (const route of api) {
      const path = route.url.replace(/:id/g, UUID);
      for (const p of spellings(path)) {
        const r = await raw(route.method, p, { 'content-type': 'application/json' }, '{}');
        sent++;
        // Never served: 401 when a route (or no route) matched; 400 for an URL that is not valid.
        expect([400, 401, 414], `${route.method} ${p} -> ${r.status} ${r.body.slice(0, 200)}`).toContain(
          r.status,
        );
        if (route.method !== 'HEAD')
          expect(
            String(JSON.parse(r.body).error?.code),
            `${route.method} ${p} -> ${r.body.slice(0, 200)}`,
          ).toMatch(/^MINIPAAS_ERR_/);
      }
    }
    expect(sent).toBeGreaterThan(200);
  });

  it('refuses malformed and wrong tokens on encoded paths too', async () => {
    for (const authorization of [
      'Bearer',
      'Bearer ',
      `Bearer ${token}x`,
      `Basic ${token}`,
      `Bearer ${'a'.repeat(600)}`,
    ]) {
      for (const p of ['/api/v1/apps', '/%61pi/v1/apps', '/a%70i/v1/apps']) {
        const r = await raw('GET', p, { authorization });
        expect(r.status, `${authorization.slice(0, 20)} ${p}`).toBe(401);
      }
    }
  });

  it('serves the encoded spellings that reach a route once the token is valid', async () => {
    for (const p of ['/api/v1/apps', '/%61pi/v1/apps', '/%61%70%69/v1/apps']) {
      const r = await raw('GET', p, auth);
      expect(r.status, p).toBe(200);
    }
  });
});

describe('rejected requests change nothing', () => {
  beforeAll(async () => {
    const r = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps',
      headers: auth,
      payload: {
        name: 'victim',
        command: "node -e \"require('http').createServer((q,s)=>s.end('ok')).listen(process.env.PORT)\"",
      },
    });
    expect(r.statusCode).toBe(201);
    const d = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps/victim/deploy',
      headers: auth,
      payload: {
        command: "node -e \"require('http').createServer((q,s)=>s.end('ok')).listen(process.env.PORT)\"",
      },
    });
    expect(d.statusCode).toBe(202);
    const id = d.json().id as string;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const v = (
        await cp.app.inject({ method: 'GET', url: `/api/v1/deployments/${id}`, headers: auth })
      ).json();
      if (v.status === 'running') return;
      if (v.status === 'failed') throw new Error(v.error);
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error('victim did not deploy');
  }, 60_000);

  it('refuses prototype names as process types, and the app keeps working', async () => {
    for (const payload of [
      '{"constructor":2}',
      '{"__proto__":2}',
      '{"prototype":1}',
      '{"processes":{"constructor":1}}',
      '{"replicas":1,"processType":"constructor"}',
      '{"toString":1}',
      '{"hasOwnProperty":1}',
    ]) {
      const r = await rejected(() =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps/victim/scale',
          headers: { ...auth, 'content-type': 'application/json' },
          payload,
        }),
      );
      expect(r.statusCode, payload).toBe(400);
    }
    await rejected(
      () =>
        cp.app.inject({
          method: 'PATCH',
          url: '/api/v1/apps/victim',
          headers: { ...auth, 'content-type': 'application/json' },
          payload: '{"processes":{"constructor":{"command":"sleep 1"}}}',
        }),
      400,
    );
    await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps',
          headers: { ...auth, 'content-type': 'application/json' },
          payload: '{"name":"proto","processes":{"constructor":{"command":"sleep 1"}}}',
        }),
      400,
    );
    // Env vars named like Object.prototype members are plain variables.
    const env = await cp.app.inject({
      method: 'PATCH',
      url: '/api/v1/apps/victim',
      headers: auth,
      payload: { env: { constructor: 'c', toString: 't', hasOwnProperty: 'h' } },
    });
    expect(env.statusCode).toBe(200);
    expect(env.json().env).toMatchObject({ constructor: 'c', toString: 't', hasOwnProperty: 'h' });
    const scale = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps/victim/scale',
      headers: auth,
      payload: { web: 2 },
    });
    expect(scale.statusCode).toBe(200);
    expect(scale.json().processes.web.instances).toBe(2);
    const back = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps/victim/scale',
      headers: auth,
      payload: { web: 1 },
    });
    expect(back.statusCode).toBe(200);
  });

  it('refuses scaling a process type the app does not have', async () => {
    const r = await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps/victim/scale',
          headers: auth,
          payload: { worker: 1 },
        }),
      400,
    );
    expect(r.json().error.message).toMatch(/no process type "worker" \(it has: web\)/);
  });

  it('caps instances per app, in total and process types per app, naming the numbers', async () => {
    const perApp = await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps/victim/scale',
          headers: auth,
          payload: { web: 5 },
        }),
      409,
    );
    expect(perApp.json().error.message).toMatch(/5 instances; at most 4 per app/);
    const types = await rejected(
      () =>
        cp.app.inject({
          method: 'PATCH',
          url: '/api/v1/apps/victim',
          headers: auth,
          payload: {
            processes: {
              a: { command: 'sleep 100' },
              b: { command: 'sleep 100' },
              c: { command: 'sleep 100' },
            },
          },
        }),
      409,
    );
    expect(types.json().error.message).toMatch(/4 process types; at most 3/);
    const created = await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps',
          headers: auth,
          payload: {
            name: 'many',
            processes: {
              a: { command: 'sleep 1', instances: 2 },
              b: { command: 'sleep 1', instances: 2 },
              c: { command: 'sleep 1', instances: 2 },
            },
          },
        }),
      409,
    );
    expect(created.json().error.message).toMatch(/6 instances; at most 4/);
    // A Procfile with more types than allowed is refused before anything is queued.
    const src = await mkdtemp(join(tmpdir(), 'mp-procfile-'));
    await writeFile(
      join(src, 'Procfile'),
      '# four types\nweb: node -e 1\nworker: sleep 100\nclock: sleep 100\nmailer: sleep 100\n',
    );
    const chunks: Buffer[] = [];
    for await (const c of tarCreate({ gzip: true, cwd: src, portable: true }, ['.']) as AsyncIterable<Buffer>)
      chunks.push(c);
    await rm(src, { recursive: true, force: true });
    const procfile = await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps/victim/deploy',
          headers: { ...auth, 'content-type': 'application/gzip' },
          payload: Buffer.concat(chunks),
        }),
      409,
    );
    expect(procfile.json().error.message).toMatch(/4 process types; at most 3/);
    // Platform-wide: victim runs 1; a second app may add 4 (5 <= 6), then scaling victim to 3 is over.
    const second = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps',
      headers: auth,
      payload: { name: 'second', processes: { web: { command: 'sleep 1000', instances: 4 } } },
    });
    expect(second.statusCode).toBe(201);
    const total = await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps/victim/scale',
          headers: auth,
          payload: { web: 3 },
        }),
      409,
    );
    expect(total.json().error.message).toMatch(/7 instances \(4 in other apps \+ 3 in "victim"\); at most 6/);
    expect(
      (await cp.app.inject({ method: 'DELETE', url: '/api/v1/apps/second', headers: auth })).statusCode,
    ).toBe(204);
  });

  it('refuses app names shaped like ids, and ids never resolve to a name', async () => {
    const victim = (await cp.app.inject({ method: 'GET', url: '/api/v1/apps/victim', headers: auth })).json();
    await rejected(
      () =>
        cp.app.inject({ method: 'POST', url: '/api/v1/apps', headers: auth, payload: { name: victim.id } }),
      400,
    );
    await rejected(
      () => cp.app.inject({ method: 'POST', url: '/api/v1/apps', headers: auth, payload: { name: UUID } }),
      400,
    );
    const byId = await cp.app.inject({
      method: 'GET',
      url: `/api/v1/apps/${victim.id.toUpperCase()}`,
      headers: auth,
    });
    expect(byId.json().name).toBe('victim');
  });

  it('answers hostile ids, bodies and media types with a short 4xx in the documented format', async () => {
    const nul = await rejected(
      () => raw('GET', '/api/v1/apps/%00', auth).then((r) => ({ statusCode: r.status, body: r.body })),
      400,
    );
    expect(nul.json().error.code).toBe('MINIPAAS_ERR_VALIDATION');
    await rejected(
      () =>
        raw('DELETE', '/api/v1/apps/victim%00', auth).then((r) => ({ statusCode: r.status, body: r.body })),
      400,
    );
    await rejected(
      () => raw('GET', '/api/v1/projects/%00', auth).then((r) => ({ statusCode: r.status, body: r.body })),
      400,
    );
    const long = await rejected(
      () =>
        raw('GET', `/api/v1/apps/${'a'.repeat(5000)}`, auth).then((r) => ({
          statusCode: r.status,
          body: r.body,
        })),
      414,
    );
    expect(long.json().error.code).toBe('MINIPAAS_ERR_URI_TOO_LONG');
    expect(long.body.length).toBeLessThan(300);
    const badUrl = await rejected(
      () => raw('GET', '/api/v1/apps/%E0%A4%A', auth).then((r) => ({ statusCode: r.status, body: r.body })),
      400,
    );
    expect(badUrl.json().error.code).toBe('MINIPAAS_ERR_VALIDATION');
    // Not even HTTP: still the documented error format.
    const garbage = await new Promise<string>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => sock.end('GET /api/v1/apps HTTP/1.1\r\nHost x\r\n\r\n'));
      let text = '';
      sock.on('data', (c: Buffer) => {
        text += c.toString();
      });
      sock.on('close', () => resolve(text));
      sock.on('error', reject);
    });
    expect(garbage).toMatch(/^HTTP\/1.1 400 /);
    expect(JSON.parse(garbage.slice(garbage.indexOf('\r\n\r\n') + 4)).error.code).toBe(
      'MINIPAAS_ERR_VALIDATION',
    );
    // A megabyte of binary where JSON is expected: a short message, not one entry per byte.
    const binary = Buffer.alloc(1024 * 1024 - 100, 7);
    for (const ct of ['application/octet-stream', 'application/json', 'text/plain']) {
      const r = await rejected(() =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps',
          headers: { ...auth, 'content-type': ct },
          payload: binary,
        }),
      );
      expect(r.body.length, ct).toBeLessThan(2000);
    }
    const huge = await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps',
          headers: { ...auth, 'content-type': 'application/json' },
          payload: JSON.stringify({
            name: 'x',
            env: Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`K${i}-`, 'v'])),
          }),
        }),
      400,
    );
    expect(huge.body.length).toBeLessThan(2000);
    // JSON on the upload route is still capped at limits.jsonBodyBytes, not the upload limit.
    const big = await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps/victim/deploy',
          headers: { ...auth, 'content-type': 'application/json' },
          payload: JSON.stringify({ command: 'x', message: 'y'.repeat(2 * 1024 * 1024) }),
        }),
      413,
    );
    expect(big.json().error.code).toBe('MINIPAAS_ERR_PAYLOAD_TOO_LARGE');
    const utf16 = await rejected(
      () =>
        cp.app.inject({
          method: 'POST',
          url: '/api/v1/apps',
          headers: { ...auth, 'content-type': 'application/json; charset=utf-16' },
          payload: Buffer.from('{"name":"wide"}', 'utf16le'),
        }),
      415,
    );
    expect(utf16.json().error.message).toMatch(/UTF-8/);
    const ok = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps',
      headers: { ...auth, 'content-type': 'application/json; charset=UTF-8' },
      payload: '{"name":"narrow"}',
    });
    expect(ok.statusCode).toBe(201);
  });
});

describe('secrets in captured logs', () => {
  it('masks the values of secret-looking env vars in what the app prints', async () => {
    const secret = 'sk_live_7f3a9c2e1b';
    const created = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps',
      headers: auth,
      payload: { name: 'leaky', env: { STRIPE_SECRET_KEY: secret, GREETING: 'hello-world' } },
    });
    expect(created.statusCode).toBe(201);
    const command = `node -e "console.log('key=' + process.env.STRIPE_SECRET_KEY + ' greeting=' + process.env.GREETING); require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)"`;
    const d = await cp.app.inject({
      method: 'POST',
      url: '/api/v1/apps/leaky/deploy',
      headers: auth,
      payload: { command },
    });
    expect(d.statusCode).toBe(202);
    const deadline = Date.now() + 30_000;
    let lines: Array<{ line: string }> = [];
    while (Date.now() < deadline) {
      const r = await cp.app.inject({ method: 'GET', url: '/api/v1/apps/leaky/logs?tail=50', headers: auth });
      lines = r.json().lines;
      if (lines.some((l) => l.line.startsWith('key='))) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const printed = lines.find((l) => l.line.startsWith('key='))?.line;
    expect(printed).toBe('key=******** greeting=hello-world');
    expect(JSON.stringify(lines)).not.toContain(secret);
    expect(
      (await cp.app.inject({ method: 'DELETE', url: '/api/v1/apps/leaky', headers: auth })).statusCode,
    ).toBe(204);
  });
});
