/** `minipaas certs server|client` (also `certs:server`, `certs:client`): TLS files for the Docker API. */
import { resolve } from 'node:path';
import type { CertResult } from '@minipaas/swarm';
import type { Command } from 'commander';
import { collect } from '../args.ts';
import type { Context } from '../context.ts';
import { swarm } from '../lazy-imports.ts';
import { json, line } from '../output.ts';

interface CertsOptions {
  dir: string;
  days?: string;
  force?: boolean;
  json?: boolean;
  san?: string[];
  addSan?: string[];
  name?: string;
}

function days(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw new Error(`bad --days ${v}: use 1-3650`);
  return n;
}

function report(ctx: Context, r: CertResult, opts: CertsOptions, kind: 'server' | 'client'): void {
  if (opts.json) {
    json(ctx.out, r);
    return;
  }
  if (r.createdCa) line(ctx.out, `Created a CA in ${r.dir} (ca.pem, ca-key.pem: keep ca-key.pem private).`);
  line(ctx.out, `Wrote ${r.written.filter((f) => !/ca(-key)?\.pem$/.test(f)).join(', ')}`);
  if (kind === 'server') {
    line(ctx.out, `  names: ${(r.names ?? []).join(', ')}`);
    line(
      ctx.out,
      '  dockerd: --tlsverify --tlscacert ca.pem --tlscert server-cert.pem --tlskey server-key.pem -H tcp://0.0.0.0:2376',
    );
  } else {
    line(ctx.out, `  use with: DOCKER_HOST=tcp://HOST:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${r.dir}`);
  }
}

export function registerCerts(program: Command, ctx: Context): void {
  const group = program
    .command('certs')
    .description('TLS certificates for the Docker API of swarm nodes (CA, server, client)')
    .addHelpText(
      'after',
      `
Examples:
  $ minipaas certs server --dir .certs --san manager1.example.com --san 192.0.2.10
  $ minipaas certs client --dir .certs`,
    );

  const server = (cmd: Command): Command =>
    cmd
      .description('create the CA (when missing) and server-key.pem / server-cert.pem for dockerd')
      .option('--dir <dir>', 'certificate directory', '.certs')
      .option('--san <name>', 'a DNS name or IP of the node (repeatable; replaces the defaults)', collect)
      .option('--add-san <name>', 'a DNS name or IP added to the defaults (repeatable)', collect)
      .option('--days <n>', 'validity in days (default 825)')
      .option('--force', 'replace an existing server key and certificate')
      .option('--json', 'print what was written as JSON')
      .addHelpText(
        'after',
        `
Default names (subject alternative names): this machine's host name, localhost, 127.0.0.1, ::1 and
the addresses of its interfaces. Keys are written 0600. Needs openssl.

Examples:
  $ minipaas certs server
  $ minipaas certs server --dir /etc/docker/certs --san manager1.example.com --san 192.0.2.10
  $ minipaas certs server --add-san docker.internal --json`,
      )
      .action(async (opts: CertsOptions) => {
        const { createServerCerts, requireCommands } = await swarm();
        requireCommands(['openssl']);
        const r = await createServerCerts({
          dir: resolve(opts.dir),
          ...(opts.san ? { names: opts.san } : {}),
          ...(opts.addSan ? { extraNames: opts.addSan } : {}),
          ...(days(opts.days) ? { days: days(opts.days) } : {}),
          force: Boolean(opts.force),
        });
        report(ctx, r, opts, 'server');
      });

  const client = (cmd: Command): Command =>
    cmd
      .description('create the CA (when missing) and key.pem / cert.pem for Docker API clients')
      .option('--dir <dir>', 'certificate directory (DOCKER_CERT_PATH)', '.certs')
      .option('--name <cn>', 'common name of the client certificate', 'minipaas-client')
      .option('--days <n>', 'validity in days (default 825)')
      .option('--force', 'replace an existing client key and certificate')
      .option('--json', 'print what was written as JSON')
      .addHelpText(
        'after',
        `
Uses the CA of the directory (the one "certs server" made) so the daemon accepts the client. Keys are
written 0600. Needs openssl.

Examples:
  $ minipaas certs client
  $ minipaas certs client --dir ~/.minipaas/certs/prod --name ci`,
      )
      .action(async (opts: CertsOptions) => {
        const { createClientCerts, requireCommands } = await swarm();
        requireCommands(['openssl']);
        const r = await createClientCerts({
          dir: resolve(opts.dir),
          ...(opts.name ? { commonName: opts.name } : {}),
          ...(days(opts.days) ? { days: days(opts.days) } : {}),
          force: Boolean(opts.force),
        });
        report(ctx, r, opts, 'client');
      });

  server(group.command('server'));
  client(group.command('client'));
  server(program.command('certs:server', { hidden: true }));
  client(program.command('certs:client', { hidden: true }));
}
