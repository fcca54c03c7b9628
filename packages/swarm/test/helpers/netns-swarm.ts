/**
 * A two-node swarm on one machine without touching the machine's own Docker engine: two dockerd
 * instances, each in a network namespace of its own (started with `nsenter --net`, as ../shared/LAB.md
 * describes), wired with veth pairs:
 *
 *   host --- P.1/P.2 --- manager (ns A) --- P.9/P.10 --- worker (ns B) --- P.6/P.5 --- host
 *
 * The nodes talk swarm over P.9/P.10; the host reaches both node addresses through host routes; the
 * host's loopback carries P.13 (a /32, removed afterwards), where the test registry listens (both daemons get
 * `--insecure-registry` for it). The manager's API listens on tcp://P.9:2376 with `--tlsverify`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CERT_FILES, createClientCerts, createServerCerts, runChecked } from '@minipaas/swarm';
import Docker from 'dockerode';
import { waitFor } from './lab.ts';

export interface NetnsSwarm {
  /** The manager's TLS API address, `P.9`. */
  managerAddr: string;
  /** ca.pem, cert.pem, key.pem for the manager's API. */
  certs: string;
  workerAddr: string;
  /** Host address both nodes reach (registry). */
  registryAddr: string;
  manager: Docker;
  worker: Docker;
  stop(): Promise<void>;
}

const ip = (args: string[]): Promise<string> => runChecked('ip', args);

interface Daemon {
  child: ChildProcess;
  log: () => string;
}

function startDaemon(ns: string, dir: string, extra: string[]): Daemon {
  for (const d of ['data', 'exec']) mkdirSync(join(dir, d), { recursive: true });
  let log = '';
  const child = spawn(
    'nsenter',
    [
      `--net=/var/run/netns/${ns}`,
      'dockerd',
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      join(dir, 'exec'),
      '--pidfile',
      join(dir, 'docker.pid'),
      '-H',
      `unix://${join(dir, 'docker.sock')}`,
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (c: Buffer): void => {
    log = (log + c.toString()).slice(-6000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, log: () => log };
}

async function stopDaemon(d: Daemon | undefined): Promise<void> {
  if (!d || d.child.exitCode !== null || d.child.signalCode !== null) return;
  const exited = new Promise((r) => d.child.once('exit', r));
  d.child.kill('SIGTERM');
  const t = setTimeout(() => d.child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(t);
}

/** Builds the namespaces, starts both daemons, inits the swarm on A over TLS and joins B. */
export async function startNetnsSwarm(work: string, registryPort: number): Promise<NetnsSwarm> {
  const id = randomBytes(3).toString('hex');
  const P = `10.77.${randomInt(100, 250)}`;
  const certs = join(work, 'certs');
  const nsA = `mpa${id}`;
  const nsB = `mpb${id}`;
  let loAddr = false;
  const managerAddr = `${P}.9`;
  const workerAddr = `${P}.10`;
  const registryAddr = `${P}.13`;
  let a: Daemon | undefined;
  let b: Daemon | undefined;
  const cleanup = async (): Promise<void> => {
    await stopDaemon(b);
    await stopDaemon(a);
    for (const ns of [nsA, nsB]) await ip(['netns', 'del', ns]).catch(() => '');
    if (loAddr) await ip(['addr', 'del', `${registryAddr}/32`, 'dev', 'lo']).catch(() => '');
  };
  try {
    await createServerCerts({ dir: certs, names: [managerAddr, 'localhost'] });
    await createClientCerts({ dir: certs });
    await ip(['netns', 'add', nsA]);
    await ip(['netns', 'add', nsB]);
    for (const [ns, host, inner, hostIp, innerIp] of [
      [nsA, `mha${id}`, `mna${id}`, `${P}.1`, `${P}.2`],
      [nsB, `mhb${id}`, `mnb${id}`, `${P}.5`, `${P}.6`],
    ] as const) {
      await ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', inner]);
      await ip(['link', 'set', inner, 'netns', ns]);
      await ip(['addr', 'add', `${hostIp}/30`, 'dev', host]);
      await ip(['link', 'set', host, 'up']);
      await ip(['-n', ns, 'addr', 'add', `${innerIp}/30`, 'dev', inner]);
      await ip(['-n', ns, 'link', 'set', inner, 'up']);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', ns, 'route', 'add', `${registryAddr}/32`, 'via', hostIp]);
    }
    await ip(['link', 'add', `mxa${id}`, 'type', 'veth', 'peer', 'name', `mxb${id}`]);
    await ip(['link', 'set', `mxa${id}`, 'netns', nsA]);
    await ip(['link', 'set', `mxb${id}`, 'netns', nsB]);
    await ip(['-n', nsA, 'addr', 'add', `${managerAddr}/30`, 'dev', `mxa${id}`]);
    await ip(['-n', nsB, 'addr', 'add', `${workerAddr}/30`, 'dev', `mxb${id}`]);
    await ip(['-n', nsA, 'link', 'set', `mxa${id}`, 'up']);
    await ip(['-n', nsB, 'link', 'set', `mxb${id}`, 'up']);
    await ip(['addr', 'add', `${registryAddr}/32`, 'dev', 'lo']);
    loAddr = true;
    await ip(['route', 'add', `${managerAddr}/32`, 'via', `${P}.2`]);
    await ip(['route', 'add', `${workerAddr}/32`, 'via', `${P}.6`]);

    const insecure = ['--insecure-registry', `${registryAddr}:${registryPort}`];
    a = startDaemon(nsA, join(work, 'node-a'), [
      '-H',
      `tcp://${managerAddr}:2376`,
      '--tlsverify',
      '--tlscacert',
      join(certs, CERT_FILES.ca),
      '--tlscert',
      join(certs, CERT_FILES.serverCert),
      '--tlskey',
      join(certs, CERT_FILES.serverKey),
      ...insecure,
    ]);
    b = startDaemon(nsB, join(work, 'node-b'), insecure);
    const { readFileSync } = await import('node:fs');
    const manager = new Docker({
      host: managerAddr,
      port: 2376,
      protocol: 'https',
      ca: readFileSync(join(certs, CERT_FILES.ca)),
      cert: readFileSync(join(certs, CERT_FILES.clientCert)),
      key: readFileSync(join(certs, CERT_FILES.clientKey)),
    });
    const worker = new Docker({ socketPath: join(work, 'node-b', 'docker.sock') });
    const da = a;
    const db = b;
    await waitFor(
      'manager dockerd',
      async () => {
        if (da.child.exitCode !== null) throw new Error(`manager dockerd exited: ${da.log().slice(-600)}`);
        await manager.ping();
        return true;
      },
      90_000,
    );
    await waitFor(
      'worker dockerd',
      async () => {
        if (db.child.exitCode !== null) throw new Error(`worker dockerd exited: ${db.log().slice(-600)}`);
        await worker.ping();
        return true;
      },
      90_000,
    );
    await manager.swarmInit({ ListenAddr: `${managerAddr}:2377`, AdvertiseAddr: managerAddr });
    const swarm = (await manager.swarmInspect()) as { JoinTokens: { Worker: string } };
    await worker.swarmJoin({
      RemoteAddrs: [`${managerAddr}:2377`],
      JoinToken: swarm.JoinTokens.Worker,
      ListenAddr: `${workerAddr}:2377`,
      AdvertiseAddr: workerAddr,
    });
    await waitFor('two ready nodes', async () => {
      const nodes = (await manager.listNodes()) as { Status?: { State?: string } }[];
      return nodes.filter((n) => n.Status?.State === 'ready').length === 2;
    });
    return { managerAddr, certs, workerAddr, registryAddr, manager, worker, stop: cleanup };
  } catch (err) {
    const logs = `manager: ${a?.log().slice(-800) ?? ''} worker: ${b?.log().slice(-800) ?? ''}`;
    await cleanup();
    throw new Error(`${err instanceof Error ? err.message : String(err)} (${logs})`);
  }
}
