/**
 * The minipaas Ansible role (ansible/roles/minipaas), converged on real throwaway hosts by
 * ansible/test/converge.sh: ansible-lint (production profile), two systemd-less Debian containers with
 * their own dockerd (one manager, one worker) reached with the community.docker.docker connection, a
 * converge, a second run that must report changed=0, a --check run, --tags docker running only the
 * Docker tasks, then checks of the swarm, the manager label, the TLS Docker API (answers with a client
 * certificate, refuses without), fail2ban, syslog-ng forwarding to a local Telegram stand-in, the
 * monitoring alert and the nftables table. The script prints "CONVERGE OK" when every check passed.
 * In CI a missing component (root, Docker engine, ansible, ansible-lint, debootstrap) fails the file.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { findOnPath } from '@minipaas/swarm';
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');
const SCRIPT = join(REPO, 'ansible', 'test', 'converge.sh');
const tools = ['ansible-playbook', 'ansible-lint', 'debootstrap', 'openssl', 'curl', 'python3'];
const missing = tools.filter((t) => !findOnPath(t) && !findOnPath(t, '/usr/sbin'));
const notRoot = process.getuid?.() !== 0;
const engineUp = await new Docker({ socketPath: '/var/run/docker.sock' }).ping().then(
  () => true,
  () => false,
);
if ((missing.length || notRoot || !engineUp) && process.env.CI)
  throw new Error(
    `CI needs root, the Docker engine and ${missing.join(', ') || 'nothing missing'} for the Ansible converge test (.ci/setup.d/30-ansible.sh)`,
  );

function runScript(): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT], {
      cwd: REPO,
      env: { ...process.env, KEEP: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

describe.skipIf(missing.length > 0 || notRoot || !engineUp)('minipaas Ansible role', () => {
  it('lints, converges two hosts, is idempotent, runs in check mode and by tag, and verifies', async () => {
    const { code, output } = await runScript();
    // On failure the script's log tail is the useful message.
    expect(code, output.slice(-6000)).toBe(0);
    expect(output).toMatch(/second run took \d+ s, changed=0 on every host/);
    expect(output).toMatch(/^manager1 Ready Leader/m);
    expect(output).toMatch(/^worker1 Ready/m);
    expect(output).toContain('without client certificate: refused');
    expect(output.trimEnd().endsWith('CONVERGE OK')).toBe(true);
  }, 1_200_000);
});
