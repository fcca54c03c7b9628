/**
 * `certs server` / `certs client` against a real dockerd started with `--tlsverify` on a free loopback
 * port (its own data root, exec root, pid file and unix socket in a temp dir; no bridge, no iptables):
 * the client certificates are accepted, a client without them is refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CERT_FILES,
  createClientCerts,
  createServerCerts,
  dockerClient,
  dockerProcessEnv,
  findOnPath,
  runCommand,
} from '@minipaas/swarm';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, removeDir, waitFor } from './helpers/lab.ts';

const missing = ['dockerd', 'openssl', 'docker'].filter((t) => !findOnPath(t));
if (missing.length && process.env.CI) throw new Error(`CI needs ${missing.join(', ')}`);
const notRoot = process.getuid?.() !== 0;

describe.skipIf(missing.length > 0 || notRoot)('TLS certificates for the Docker API', () => {
  let work: string;
  let certs: string;
  let port: number;
  let daemon: ChildProcess | undefined;
  let log = '';

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'minipaas-tls-'));
    certs = join(work, 'certs');
    await createServerCerts({ dir: certs, names: ['localhost', '127.0.0.1'] });
    await createClientCerts({ dir: certs });
    port = await freePort();
    for (const d of ['data', 'exec']) mkdirSync(join(work, d));
    daemon = spawn(
      'dockerd',
      [
        '--data-root',
        join(work, 'data'),
        '--exec-root',
        join(work, 'exec'),
        '--pidfile',
        join(work, 'docker.pid'),
        '-H',
        `unix://${join(work, 'docker.sock')}`,
        '-H',
        `tcp://127.0.0.1:${port}`,
        '--tlsverify',
        '--tlscacert',
        join(certs, CERT_FILES.ca),
        '--tlscert',
        join(certs, CERT_FILES.serverCert),
        '--tlskey',
        join(certs, CERT_FILES.serverKey),
        '--iptables=false',
        '--ip-masq=false',
        '--bridge=none',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    daemon.stdout?.on('data', (c: Buffer) => {
      log += c.toString();
    });
    daemon.stderr?.on('data', (c: Buffer) => {
      log = (log + c.toString()).slice(-4000);
    });
    const client = dockerClient({ host: `tcp://127.0.0.1:${port}`, tls: true, certPath: certs });
    await waitFor(
      'dockerd with TLS',
      async () => {
        if (daemon?.exitCode !== null) throw new Error(`dockerd exited: ${log.slice(-500)}`);
        await client.ping();
        return true;
      },
      90_000,
    );
  }, 120_000);

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon?.once('exit', r));
      daemon.kill('SIGTERM');
      const t = setTimeout(() => daemon?.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    }
    removeDir(work);
  }, 60_000);

  it('writes the files Docker expects, keys 0600', () => {
    for (const f of [CERT_FILES.caKey, CERT_FILES.serverKey, CERT_FILES.clientKey])
      expect(statSync(join(certs, f)).mode & 0o777).toBe(0o600);
    for (const f of [CERT_FILES.ca, CERT_FILES.serverCert, CERT_FILES.clientCert])
      expect(statSync(join(certs, f)).mode & 0o777).toBe(0o644);
  });

  it('the daemon accepts the client certificates (dockerode and the docker CLI)', async () => {
    const client = dockerClient({ host: `tcp://127.0.0.1:${port}`, tls: true, certPath: certs });
    const v = (await client.version()) as { ApiVersion?: string };
    expect(v.ApiVersion).toMatch(/^\d+\.\d+$/);
    const cli = await runCommand('docker', ['version', '--format', '{{.Server.APIVersion}}'], {
      env: dockerProcessEnv({ host: `tcp://127.0.0.1:${port}`, tls: true, certPath: certs }),
    });
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
  });

  it('refuses a client without certificates, and plain HTTP', async () => {
    const ca = (await import('node:fs')).readFileSync(join(certs, CERT_FILES.ca));
    const noCert = new Docker({ host: '127.0.0.1', port, protocol: 'https', ca });
    await expect(noCert.ping()).rejects.toThrow();
    const plain = new Docker({ host: '127.0.0.1', port, protocol: 'http' });
    await expect(plain.ping()).rejects.toThrow();
  });

  it('refuses a client whose certificate comes from another CA', async () => {
    const other = join(work, 'other');
    await createClientCerts({ dir: other });
    const { readFileSync } = await import('node:fs');
    const foreign = new Docker({
      host: '127.0.0.1',
      port,
      protocol: 'https',
      ca: readFileSync(join(certs, CERT_FILES.ca)),
      cert: readFileSync(join(other, CERT_FILES.clientCert)),
      key: readFileSync(join(other, CERT_FILES.clientKey)),
    });
    await expect(foreign.ping()).rejects.toThrow();
  });
});
