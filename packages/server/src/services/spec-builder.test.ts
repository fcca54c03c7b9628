import { describe, expect, it } from 'vitest';
import { buildSpec, effectiveProcesses, secretValues } from './spec-builder.ts';

describe('secretValues', () => {
  it('picks values of secret-looking names and URLs with passwords, longest first', () => {
    const env = {
      API_TOKEN: 'tok-123456',
      STRIPE_SECRET_KEY: 'sk_live_abcdef',
      DB_PASSWORD: 'hunter22',
      AWS_ACCESS_KEY_ID: 'AKIAXXXXXX',
      DATABASE_URL: 'postgres://app:pw-9876@db:5432/app',
      PUBLIC_URL: 'https://example.com/',
      PORT_NAME: 'web',
      SHORT_TOKEN: 'abc',
      NODE_ENV: 'production',
    };
    expect(secretValues(env)).toEqual([
      'postgres://app:pw-9876@db:5432/app',
      'sk_live_abcdef',
      'tok-123456',
      'AKIAXXXXXX',
      'hunter22',
    ]);
  });
});

describe('effectiveProcesses', () => {
  it('never reads inherited properties, even from stored data written before names were checked', () => {
    const processes = JSON.parse('{"constructor":{"instances":2},"web":{"instances":2}}');
    const out = effectiveProcesses({ processes }, { commands: { web: 'node server.js', toString: 'x' } });
    expect(out).toEqual({ web: { command: 'node server.js', instances: 2 } });
  });
});

describe('buildSpec env of a rollback release', () => {
  it("runs with the snapshot while being deployed, then with the app's env (which env:set changes)", () => {
    const app = { name: 'a', env: { K: 'changed after the rollback' }, processes: {}, current_release: 2 };
    const release = {
      version: 3,
      rollback_of: 1,
      env: {},
      config_env: { K: 'as at v1' },
      dir: '/x',
      artifact: null,
      commands: { web: 'node s.js' },
      app_json: null,
    };
    const spec = (current: number) =>
      buildSpec({ ...app, current_release: current } as never, release as never).env.K;
    expect(spec(2)).toBe('as at v1');
    expect(spec(3)).toBe('changed after the rollback');
  });
});
