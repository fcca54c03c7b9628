/**
 * A private repository over SSH with a deploy key (issue 10): a real `sshd` (openssh-server, installed by
 * .ci/setup.d/25-git.sh) on 127.0.0.1 that accepts only the deploy key, a real node agent and a real
 * PostgreSQL database. The app builds from `ssh://` with the key, the key is stored sealed and never
 * answered, and without the key the build fails with a clear message. In CI a missing sshd fails the file.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentHandle, startAgent } from '@minipaas/agent';
import { type DeploymentView, loadConfig } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gitCmd, procfileApp } from '../../../test/helpers/git-repos.ts';
import { routerGet, waitFor } from '../../../test/helpers/platform.ts';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/postgres-server.ts';
import { type ControlPlane, createControlPlane } from '../src/server.ts';

const SSHD = '/usr/sbin/sshd';
const root = process.getuid?.() === 0;
if (process.env.CI && !existsSync(SSHD))
  throw new Error('CI needs openssh-server (sshd) for the SSH deploy key test');

let home: string;
let work: string;
let agent: AgentHandle;
let cp: ControlPlane;
let sshd: ChildProcess | undefined;
let sshPort = 0;
let dropDb: () => Promise<void> = async () => {};
let auth: { authorization: string };
let deployKey = '';
let bare = '';

async function api<T>(method: string, url: string, payload?: unknown): Promise<{ status: number; body: T }> {
  const r = await cp.app.inject({
    method: method as 'GET',
    url,
    headers: auth,
    ...(payload !== undefined ? { payload: payload as Record<string, string> } : {}),
  });
  return { status: r.statusCode, body: (r.body ? r.json() : null) as T };
}

const finished = (id: string) =>
  waitFor(
    `deployment ${id} to finish`,
    async () => {
      const d = (await api<DeploymentView>('GET', `/api/v1/deployments/${id}`)).body;
      return ['running', 'failed', 'cancelled'].includes(d.status) ? d : null;
    },
    120_000,
  );

describe.runIf(root && (existsSync(SSHD) || process.env.CI))('git source over SSH with a deploy key', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mp-git-ssh-'));
    home = await mkdtemp(join(tmpdir(), 'mp-git-ssh-home-'));
    // Host key, the deploy key, and an sshd that accepts only that key (for the current user: root).
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(work, 'host_key')]);
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'deploy',
      '-f',
      join(work, 'deploy_key'),
    ]);
    deployKey = await readFile(join(work, 'deploy_key'), 'utf8');
    await writeFile(join(work, 'authorized_keys'), await readFile(join(work, 'deploy_key.pub'), 'utf8'));
    await chmod(join(work, 'authorized_keys'), 0o600);
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    sshPort = await freePort();
    await writeFile(
      join(work, 'sshd_config'),
      [
        `Port ${sshPort}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(work, 'host_key')}`,
        `AuthorizedKeysFile ${join(work, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        'UsePAM no',
        `PidFile ${join(work, 'sshd.pid')}`,
        '',
      ].join('\n'),
    );
    sshd = spawn(SSHD, ['-D', '-e', '-f', join(work, 'sshd_config')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let sshdLog = '';
    sshd.stderr?.on('data', (d: Buffer) => {
      sshdLog += d.toString();
    });
    await waitFor(`sshd on port ${sshPort}`, async () => {
      if (sshd?.exitCode !== null) throw new Error(`sshd exited: ${sshdLog}`);
      return /Server listening/.test(sshdLog);
    });

    // The private repository: a bare repository reachable only over SSH.
    bare = join(work, 'private.git');
    await gitCmd(['init', '--bare', '-b', 'main', bare]);
    const tree = join(work, 'tree');
    await gitCmd(['init', '-b', 'main', tree]);
    for (const [f, body] of Object.entries(procfileApp('hello over ssh')))
      await writeFile(join(tree, f), body);
    await gitCmd(['add', '.'], tree);
    await gitCmd(['commit', '-m', 'over ssh'], tree);
    await gitCmd(['push', bare, 'main'], tree);

    const portMin = 24000 + Math.floor(Math.random() * 80) * 100;
    const config = await loadConfig({
      MINIPAAS_HOME: home,
      MINIPAAS_APP_PORT_MIN: String(portMin),
      MINIPAAS_APP_PORT_MAX: String(portMin + 99),
      MINIPAAS_ROUTER_PORT: String(await freePort()),
      MINIPAAS_STOP_GRACE_MS: '1000',
      MINIPAAS_LOG_LEVEL: 'silent',
    });
    const logger = pino({ level: 'silent' });
    agent = await startAgent({ config, logger, router: { host: '127.0.0.1', port: 0 } });
    const db = await createTestDatabase('gitssh');
    dropDb = db.drop;
    cp = await createControlPlane({
      config: { ...config, databaseUrl: db.url },
      drivers: [new ProcessDriver(new AgentClient(agent.socketPath))],
      logger,
      reconcile: false,
    });
    auth = { authorization: `Bearer ${cp.createdAdminToken}` };
  }, 90_000);

  afterAll(async () => {
    await cp?.close();
    await agent?.close();
    await dropDb();
    sshd?.kill('SIGTERM');
    if (work) await rm(work, { recursive: true, force: true });
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('builds from ssh:// with the deploy key, keeps the key sealed, and fails clearly without it', async () => {
    const url = `ssh://root@127.0.0.1:${sshPort}${bare}`;
    // Without the key: the build fails, and says the repository could not be fetched.
    expect((await api('POST', '/api/v1/apps', { name: 'sshapp', git: { url, ref: 'main' } })).status).toBe(
      201,
    );
    const refused = await api<DeploymentView & { error?: { message: string } }>(
      'POST',
      '/api/v1/apps/sshapp/git/builds',
    );
    const refusedText = JSON.stringify(refused.body);
    if (refused.status === 202) {
      const d = await finished(refused.body.id);
      expect(d.status).toBe('failed');
    } else expect(refused.status, refusedText).toBeGreaterThanOrEqual(400);

    // With the deploy key: fetched over SSH, built and serving.
    const set = await api<{ credential: string | null }>('PUT', '/api/v1/apps/sshapp/git', {
      url,
      ref: 'main',
      sshKey: deployKey,
    });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body.credential).toBe('ssh-key');
    expect(JSON.stringify(set.body)).not.toContain('PRIVATE KEY');
    const b = await api<DeploymentView>('POST', '/api/v1/apps/sshapp/git/builds');
    expect(b.status, JSON.stringify(b.body)).toBe(202);
    const d = await finished(b.body.id);
    expect(d.status, d.log.join('\n')).toBe('running');
    expect(d.log.join('\n')).not.toContain('PRIVATE KEY');
    const page = await routerGet(agent.router?.port ?? 0, '/', `sshapp.${cp.ctx.config.router.baseDomain}`);
    expect(page.body).toBe('hello over ssh');

    // The key is sealed at rest: no row holds its body.
    const keyBody = deployKey.split('\n')[1] as string;
    const rows = await cp.ctx.store.db.selectFrom('apps').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(keyBody);
    const sources = (await sql`SELECT * FROM git_sources`.execute(cp.ctx.store.db)).rows;
    expect(sources).toHaveLength(1);
    const gitRows = JSON.stringify(sources);
    expect(gitRows).not.toContain(keyBody);
  }, 180_000);
});
