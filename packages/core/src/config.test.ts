import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('applies defaults, then file, then env', async () => {
    const home = mkdtempSync(join(tmpdir(), 'mp-cfg-'));
    writeFileSync(
      join(home, 'minipaas.config.yaml'),
      'router:\n  port: 9000\n  baseDomain: apps.test\napi:\n  port: 7100\n',
    );
    const c = await loadConfig({ MINIPAAS_HOME: home, MINIPAAS_API_PORT: '7200' });
    expect(c.home).toBe(home);
    expect(c.api).toEqual({ host: '127.0.0.1', port: 7200 });
    expect(c.router.port).toBe(9000);
    expect(c.router.baseDomain).toBe('apps.test');
    expect(c.apps.keepReleases).toBe(5);
    expect(Object.isFrozen(c.router)).toBe(true);
  });
  it('refuses bad values with a readable message', async () => {
    const home = mkdtempSync(join(tmpdir(), 'mp-cfg-'));
    await expect(loadConfig({ MINIPAAS_HOME: home, MINIPAAS_API_PORT: 'abc' })).rejects.toThrow(/api\.port/);
    await expect(
      loadConfig({ MINIPAAS_HOME: home, MINIPAAS_APP_PORT_MIN: '30000', MINIPAAS_APP_PORT_MAX: '2000' }),
    ).rejects.toThrow(/portMin/);
    expect((await loadConfig({ MINIPAAS_HOME: home })).swarm.edgeDns).toBe('127.0.0.1:5380');
    for (const ok of ['off', '[::1]:53', '10.0.0.2:65535'])
      expect((await loadConfig({ MINIPAAS_HOME: home, MINIPAAS_SWARM_EDGE_DNS: ok })).swarm.edgeDns).toBe(ok);
    for (const bad of ['localhost:5380', '127.0.0.1:0', '127.0.0.1:70000', '127.0.0.1', 'on'])
      await expect(loadConfig({ MINIPAAS_HOME: home, MINIPAAS_SWARM_EDGE_DNS: bad })).rejects.toThrow(
        /swarm\.edgeDns must be IP:PORT/,
      );
    writeFileSync(join(home, 'minipaas.config.json'), '{not json');
    await expect(loadConfig({ MINIPAAS_HOME: home })).rejects.toThrow(/cannot read config file/);
  });
});
