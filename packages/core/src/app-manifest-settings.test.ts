import { describe, expect, it } from 'vitest';
import { parseAppManifest } from './app-manifest.ts';

describe('minipaas.yaml settings applied per release (processes, env, healthcheck, resources)', () => {
  it('reads them', () => {
    const m = parseAppManifest(
      'processes:\n  web: { command: node s.js, instances: 2 }\n  worker: { instances: 0 }\nenv:\n  A: x\n  N: 3\n  B: true\nhealthcheck: { path: /up }\nresources: { memoryMb: 128, cpuMillicores: 250 }\n',
    );
    expect(m).toMatchObject({
      processes: { web: { command: 'node s.js', instances: 2 }, worker: { instances: 0 } },
      env: { A: 'x', N: 3, B: true },
      healthcheck: { path: '/up' },
      resources: { memoryMb: 128, cpuMillicores: 250 },
      unknownKeys: [],
    });
  });

  it('refuses bad values with the key in the message', () => {
    for (const [text, key] of [
      ['processes: { Web: {} }\n', 'processes'],
      ['processes: { web: { instances: 101 } }\n', 'processes.web.instances'],
      ['processes: { web: { cmd: x } }\n', 'processes.web'],
      ['processes: { __proto__: { instances: 1 } }\n', 'processes'],
      ['env: { "A-B": x }\n', 'env'],
      ['env: { A: [1] }\n', 'env.A'],
      ['healthcheck: { path: "no-slash" }\n', 'healthcheck.path'],
      ['resources: { memoryMb: 0 }\n', 'resources.memoryMb'],
      ['resources: { disk: 1 }\n', 'resources'],
    ] as const)
      expect(() => parseAppManifest(text), text).toThrow(
        new RegExp(`minipaas\\.yaml: ${key.replace('.', '\\.')}`),
      );
  });
});
