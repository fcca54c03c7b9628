import { execFileSync } from 'node:child_process';
import type { RuntimeSpec } from '@minipaas/core';
import { describe, expect, it } from 'vitest';
import {
  containerCommand,
  cronServiceSpec,
  IMAGE_CMD,
  secretRefs,
  serviceName,
  serviceSpec,
  webHealthcheck,
} from './service-spec.ts';

/** The parts of the Engine API ServiceSpec these tests read. */
interface Svc {
  Name: string;
  Mode: unknown;
  Labels: Record<string, string>;
  UpdateConfig: unknown;
  RollbackConfig: unknown;
  EndpointSpec: { Mode: string; Ports?: unknown[] };
  TaskTemplate: {
    Resources: unknown;
    RestartPolicy: { Condition: string };
    Placement: unknown;
    ContainerSpec: {
      Labels: Record<string, string>;
      Env: string[];
      Secrets: unknown[];
      Command?: string[];
      Healthcheck?: { Test: string[] };
    };
  };
}

const base: RuntimeSpec = {
  name: 'shop',
  release: 'v7',
  artifact: { kind: 'image', ref: 'minipaas/shop:v7' },
  env: { PLAIN: 'x', DATABASE_URL: 'postgres://u:p@h/db', 'not-shell': 'also-secret' },
  maskValues: ['postgres://u:p@h/db', 'also-secret', ''],
  processes: {
    web: { command: 'node server.js', instances: 3 },
    worker: { command: IMAGE_CMD, instances: 1 },
  },
  healthcheck: { path: '/health' },
  resources: { memoryMb: 128, cpuMillicores: 500, pids: 100 },
  restart: 'on-failure',
  domains: ['shop.example.com'],
};

const opts = {
  image: '10.0.0.1:5000/minipaas/shop:v7',
  network: 'minipaas-swarm',
  constraints: ['node.labels.pool==apps'],
  secretIds: new Map([['x', 'y']]),
  digest: 'd1',
  stopGraceMs: 10_000,
  monitorMs: 3000,
};

describe('serviceSpec', () => {
  it('maps replicas, start-first update with rollback, limits, restart policy, placement and labels', () => {
    const s = serviceSpec(base, 'web', opts) as unknown as Svc;
    expect(s.Name).toBe(serviceName('shop', 'web'));
    expect(s.Mode).toEqual({ Replicated: { Replicas: 3 } });
    expect(s.UpdateConfig).toMatchObject({ Order: 'start-first', FailureAction: 'rollback', Parallelism: 1 });
    expect(s.RollbackConfig).toMatchObject({ Order: 'start-first' });
    expect(s.TaskTemplate.Resources).toEqual({
      Limits: { MemoryBytes: 128 * 1024 * 1024, NanoCPUs: 500_000_000, Pids: 100 },
    });
    expect(s.TaskTemplate.RestartPolicy.Condition).toBe('on-failure');
    expect(s.TaskTemplate.Placement).toEqual({ Constraints: ['node.labels.pool==apps'] });
    expect(s.Labels).toMatchObject({
      'minipaas.app': 'shop',
      'minipaas.release': 'v7',
      'minipaas.process': 'web',
      'minipaas.digest': 'd1',
      'minipaas.domains': 'shop.example.com',
    });
    expect(s.TaskTemplate.ContainerSpec.Labels).toEqual(s.Labels);
    expect(s.EndpointSpec.Ports).toEqual([{ Protocol: 'tcp', TargetPort: 5000, PublishMode: 'host' }]);
    expect(s.TaskTemplate.ContainerSpec.Healthcheck?.Test[1]).toContain("'http://127.0.0.1:5000/health'");
  });

  it('keeps secret values out of the spec: Docker secrets read by a shell prefix', () => {
    const s = serviceSpec(base, 'web', opts) as unknown as Svc;
    const text = JSON.stringify(s);
    expect(text).not.toContain('postgres://u:p@h/db');
    // A key the shell cannot export stays a plain env var (it cannot be read back from a file by name).
    expect(s.TaskTemplate.ContainerSpec.Env).toContain('not-shell=also-secret');
    expect(s.TaskTemplate.ContainerSpec.Env).toContain('PORT=5000');
    expect(s.TaskTemplate.ContainerSpec.Secrets).toEqual([
      {
        SecretID: undefined,
        SecretName: expect.stringMatching(/^minipaas-shop-database-url-[0-9a-f]{8}$/),
        File: { Name: 'minipaas_DATABASE_URL', UID: '0', GID: '0', Mode: 0o444 },
      },
    ]);
    expect(s.TaskTemplate.ContainerSpec.Command).toEqual([
      '/bin/sh',
      '-c',
      'DATABASE_URL="$(cat /run/secrets/minipaas_DATABASE_URL)"; export DATABASE_URL; node server.js',
    ]);
    const worker = serviceSpec(base, 'worker', opts) as unknown as Svc;
    expect(worker.EndpointSpec).toEqual({ Mode: 'vip' });
    expect(worker.TaskTemplate.ContainerSpec.Healthcheck).toBeUndefined();
  });

  it('versions a secret by its value', () => {
    const a = secretRefs(base)[0];
    const b = secretRefs({ ...base, env: { ...base.env, DATABASE_URL: 'other' }, maskValues: ['other'] })[0];
    expect(a?.name).not.toBe(b?.name);
    expect(secretRefs({ ...base, maskValues: [] })).toEqual([]);
  });

  it('wraps the image command only when secrets need exporting', () => {
    const refs = secretRefs(base);
    expect(containerCommand(IMAGE_CMD, [], ['node', 'x.js'])).toBeUndefined();
    const cmd = containerCommand(IMAGE_CMD, refs, ['node', 'x.js']);
    expect(cmd?.slice(3)).toEqual(['sh', 'node', 'x.js']);
    // The prefix really exports the value and execs the image command with its arguments.
    const dir = execFileSync('mktemp', ['-d']).toString().trim();
    execFileSync('/bin/sh', ['-c', `printf 'v a l' > ${dir}/minipaas_DATABASE_URL`]);
    const script = (cmd?.[2] ?? '').replaceAll('/run/secrets', dir);
    const out = execFileSync('/bin/sh', [
      '-c',
      script,
      'sh',
      '/bin/sh',
      '-c',
      'printf "%s|%s" "$DATABASE_URL" "$0"',
      'zero',
    ]);
    expect(out.toString()).toBe('v a l|zero');
    execFileSync('rm', ['-rf', dir]);
  });

  it('makes an app.json cron job a scheduled service with no task between runs', () => {
    const spec = { ...base, cron: [{ command: 'node report.js', schedule: '*/5 * * * *' }] };
    const s = cronServiceSpec(spec, 1, opts) as unknown as Svc & { TaskTemplate: { RestartPolicy: unknown } };
    expect(s.Name).toBe('minipaas-shop--cron-1');
    expect(s.Mode).toEqual({ Replicated: { Replicas: 0 } });
    expect(s.Labels).toMatchObject({
      'minipaas.app': 'shop',
      'minipaas.process': 'cron:1',
      'minipaas.cron': '1',
      'swarm.cronjob.enable': 'true',
      'swarm.cronjob.schedule': '*/5 * * * *',
      'swarm.cronjob.skip-running': 'true',
      'swarm.cronjob.replicas': '1',
    });
    expect(s.TaskTemplate.RestartPolicy).toEqual({ Condition: 'none' });
    expect(s.UpdateConfig).toMatchObject({ FailureAction: 'continue' });
    expect(s.EndpointSpec).toEqual({ Mode: 'vip' });
    expect(s.TaskTemplate.ContainerSpec.Command?.[2]).toMatch(/export DATABASE_URL; node report\.js$/);
    expect(() => cronServiceSpec(spec, 2, opts)).toThrow(/no cron job 2/);
  });

  it('quotes the health path for the shell', () => {
    const t = webHealthcheck({ ...base, healthcheck: { path: "/it's" } }).Test as string[];
    expect(t[1]).toContain(`'http://127.0.0.1:5000/it'\\''s'`);
  });
});
