/**
 * The toolkit's pure parts on real files (no Docker): SAN validation, compose merging, round-tripped
 * YAML edits, the Caddy config, build-context filtering, environment loading and tags.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ComposeFile,
  caddyConfig,
  contentHash,
  contextFiles,
  dockerEnv,
  initEnvironment,
  loadEnvironment,
  mergedServices,
  stackNameFor,
  subjectAltNames,
  timeTag,
  validateSchedule,
} from '@minipaas/swarm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'minipaas-swarm-units-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('certificates', () => {
  it('turns names into DNS and IP SANs and refuses garbage', () => {
    expect(subjectAltNames(['manager1.example.com', '10.0.0.5', '::1', '*.internal'])).toEqual([
      'DNS:manager1.example.com',
      'IP:10.0.0.5',
      'IP:::1',
      'DNS:*.internal',
    ]);
    expect(() => subjectAltNames(['bad name'])).toThrow(/not a DNS name/);
    expect(() => subjectAltNames(['a,DNS:evil'])).toThrow(/not a DNS name/);
  });
});

describe('compose files', () => {
  it('keeps comments and order across edits; an empty flow map grows in block style', () => {
    const p = join(work, 'c.yaml');
    writeFileSync(p, '# top\nservices: {}\n# tail comment\n');
    const f = ComposeFile.load(p);
    f.set(['services', 'web', 'image'], 'x:1');
    f.labels(['services', 'web', 'deploy', 'labels']).set('a', 'b');
    f.save();
    expect(readFileSync(p, 'utf8')).toBe(
      '# top\nservices:\n  web:\n    image: x:1\n    deploy:\n      labels:\n        a: b\n\n# tail comment\n',
    );
  });

  it('converts KEY=VALUE label lists and merges files like stack deploy', () => {
    const a = join(work, 'a.yaml');
    const b = join(work, 'b.yaml');
    writeFileSync(
      a,
      'services:\n  web:\n    build: ./web\n    deploy:\n      labels: ["x=1", "y=2"]\n    secrets: [pw]\n',
    );
    writeFileSync(b, 'services:\n  web:\n    image: reg/web:2\n    deploy:\n      labels:\n        y: "3"\n');
    const merged = mergedServices([ComposeFile.load(a), ComposeFile.load(b)]).get('web');
    expect(merged).toEqual({
      name: 'web',
      build: './web',
      image: 'reg/web:2',
      labels: { x: '1', y: '3' },
      secrets: ['pw'],
      configs: [],
    });
    const f = ComposeFile.load(a);
    f.labels(['services', 'web', 'deploy', 'labels']).set('z', '4');
    expect(f.get(['services', 'web', 'deploy', 'labels'])).toEqual({ x: '1', y: '2', z: '4' });
    expect(f.delete(['services', 'nope', 'x'])).toBe(false);
  });
});

describe('caddy config', () => {
  it('prepends a route per exposed service to the first server; 503 without upstreams', () => {
    const base = {
      admin: { listen: '127.0.0.1:2019' },
      apps: { http: { servers: { s: { listen: [':80'], routes: [{ x: 1 }] } } } },
    };
    const cfg = caddyConfig(base, [
      {
        service: 'st_api',
        domain: 'a.test',
        path: '/api',
        port: 80,
        upstreams: ['10.0.0.1:3001', '10.0.0.2:3002'],
      },
      { service: 'st_web', domain: 'a.test', port: 80, upstreams: [] },
    ]) as { apps: { http: { servers: { s: { routes: Record<string, unknown>[] } } } } };
    const routes = cfg.apps.http.servers.s.routes;
    expect(routes).toHaveLength(3);
    expect(routes[0]).toMatchObject({
      match: [{ host: ['a.test'], path: ['/api*'] }],
      handle: [
        { handler: 'reverse_proxy', upstreams: [{ dial: '10.0.0.1:3001' }, { dial: '10.0.0.2:3002' }] },
      ],
    });
    expect(routes[1]).toMatchObject({ handle: [{ handler: 'static_response', status_code: 503 }] });
    expect(routes[2]).toEqual({ x: 1 });
    expect(base.apps.http.servers.s.routes).toHaveLength(1); // the base is not changed
  });
});

describe('build context', () => {
  it('honours .dockerignore, with exceptions, and always sends the Dockerfile', () => {
    const d = join(work, 'ctx');
    mkdirSync(join(d, 'node_modules/x'), { recursive: true });
    mkdirSync(join(d, 'src'), { recursive: true });
    writeFileSync(join(d, 'Dockerfile'), 'FROM x\n');
    writeFileSync(join(d, '.dockerignore'), '# deps\nnode_modules\n*.log\nDockerfile\n!keep.log\n');
    writeFileSync(join(d, 'node_modules/x/index.js'), '');
    writeFileSync(join(d, 'src/app.js'), '');
    writeFileSync(join(d, 'debug.log'), '');
    writeFileSync(join(d, 'keep.log'), '');
    expect(contextFiles(d)).toEqual(['.dockerignore', 'Dockerfile', 'keep.log', 'src/app.js']);
  });
});

describe('environments', () => {
  it('init writes a loadable environment; DOCKER_* follow its docker section', () => {
    const r = initEnvironment({ dir: join(work, 'My Env'), dockerHost: 'tcp://m1:2376' });
    expect(r.stack).toBe('my-env');
    const env = loadEnvironment(r.dir);
    expect(env.composeFiles.map((f) => f.slice(r.dir.length + 1))).toEqual([
      'compose.yaml',
      'compose.override.yaml',
    ]);
    expect(dockerEnv(env.docker)).toEqual({
      DOCKER_HOST: 'tcp://m1:2376',
      DOCKER_TLS_VERIFY: '1',
      DOCKER_CERT_PATH: join(r.dir, '.certs'),
    });
    expect(JSON.parse(readFileSync(join(r.dir, 'caddy.json'), 'utf8')).admin.listen).toBe('127.0.0.1:2019');
    writeFileSync(join(r.dir, 'minipaas.yaml'), 'stack: Bad Stack\n');
    expect(() => loadEnvironment(r.dir)).toThrow(/"stack" must be/);
    expect(() => loadEnvironment(join(work, 'none'))).toThrow(/code init/);
  });

  it('names, hashes, tags and schedules', () => {
    expect(stackNameFor('/x/Shop_Prod!')).toBe('shop_prod');
    expect(contentHash(Buffer.from('a'))).toBe('ca978112ca1b');
    expect(timeTag(new Date('2026-11-23T23:10:05.123Z'))).toBe('20261123-231005');
    expect(() => validateSchedule('*/5 * * * *')).not.toThrow();
    expect(() => validateSchedule('*/2 * * * * *')).not.toThrow();
    expect(() => validateSchedule('61 * * * *')).toThrow(/bad schedule/);
    expect(() => validateSchedule('* * * *')).toThrow(/5 fields/);
  });
});
