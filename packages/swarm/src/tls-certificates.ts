/**
 * `certs server` / `certs client`: a CA plus server and client keys and certificates for the Docker API
 * over TLS, made with `openssl` (ECDSA P-256). File names are the ones Docker expects: `ca.pem`,
 * `server-cert.pem`, `server-key.pem` for dockerd, `ca.pem`, `cert.pem`, `key.pem` for clients
 * (`DOCKER_CERT_PATH`). Private keys are written 0600.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import { requireCommands, runChecked } from './command-runner.ts';

/** The file names the Docker daemon and clients look for. */
export const CERT_FILES = {
  ca: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server-cert.pem',
  serverKey: 'server-key.pem',
  clientCert: 'cert.pem',
  clientKey: 'key.pem',
} as const;

/** Options shared by both kinds of certificate. */
export interface CertOptions {
  /** Directory holding (or receiving) the CA and the certificates; created 0700 when missing. */
  dir: string;
  /** Validity in days of new certificates (default 825; the CA gets 10 years). */
  days?: number;
  /** Overwrite an existing key and certificate of this kind (the CA is always reused when present). */
  force?: boolean;
  /** Common name of a CA created by this call (default `MiniPaaS CA`). */
  caName?: string;
}

/** Options of {@link createServerCerts}. */
export interface ServerCertOptions extends CertOptions {
  /**
   * Subject alternative names: DNS names and IP addresses clients use to reach the daemon. Default:
   * this machine's host name, `localhost`, `127.0.0.1`, `::1` and every address of its interfaces.
   */
  names?: readonly string[];
  /** Added to the defaults (or to `names`) instead of replacing them. */
  extraNames?: readonly string[];
}

/** Options of {@link createClientCerts}. */
export interface ClientCertOptions extends CertOptions {
  /** Common name of the client certificate (default `minipaas-client`). */
  commonName?: string;
}

/** What a call wrote. */
export interface CertResult {
  dir: string;
  /** Files written by this call (absolute paths). */
  written: string[];
  /** True when the CA was created by this call. */
  createdCa: boolean;
  /** Subject alternative names of a server certificate. */
  names?: string[];
}

/** The default SANs: host name, localhost, loopback and every interface address. */
export function defaultServerNames(): string[] {
  const names = new Set<string>([hostname(), 'localhost', '127.0.0.1', '::1']);
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) names.add(a.address.split('%')[0] as string);
  }
  return [...names];
}

const NAME_RE = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

/** `DNS:name` / `IP:addr` entries, validated (a bad name is a one-line validation error). */
export function subjectAltNames(names: readonly string[]): string[] {
  return [...new Set(names)].map((n) => {
    if (isIP(n)) return `IP:${n}`;
    if (!NAME_RE.test(n) || n.length > 253)
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `not a DNS name or IP address: ${JSON.stringify(n)}`,
      );
    return `DNS:${n}`;
  });
}

const writeKey = (path: string): void => chmodSync(path, 0o600);

async function ensureCa(dir: string, opts: CertOptions, written: string[]): Promise<boolean> {
  const ca = join(dir, CERT_FILES.ca);
  const caKey = join(dir, CERT_FILES.caKey);
  if (existsSync(ca) && existsSync(caKey)) return false;
  if (existsSync(ca) !== existsSync(caKey))
    throw new MinipaasError(
      'MINIPAAS_ERR_CONFLICT',
      `${dir} has only one of ${CERT_FILES.ca} and ${CERT_FILES.caKey}: restore the other or remove both`,
    );
  const cn = (opts.caName ?? 'MiniPaaS CA').replace(/[/=\\]/g, ' ');
  await runChecked('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    ca,
    '-days',
    '3650',
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  writeKey(caKey);
  chmodSync(ca, 0o644);
  written.push(ca, caKey);
  return true;
}

async function issue(
  dir: string,
  kind: 'server' | 'client',
  subject: string,
  extensions: string[],
  opts: CertOptions,
): Promise<CertResult> {
  requireCommands(['openssl']);
  const cert = join(dir, kind === 'server' ? CERT_FILES.serverCert : CERT_FILES.clientCert);
  const key = join(dir, kind === 'server' ? CERT_FILES.serverKey : CERT_FILES.clientKey);
  if (!opts.force && (existsSync(cert) || existsSync(key)))
    throw new MinipaasError(
      'MINIPAAS_ERR_CONFLICT',
      `${existsSync(cert) ? cert : key} already exists (use --force to replace it)`,
    );
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const createdCa = await ensureCa(dir, opts, written);
  const work = mkdtempSync(join(tmpdir(), 'minipaas-certs-'));
  try {
    const csr = join(work, 'req.csr');
    const ext = join(work, 'ext.cnf');
    const newKey = join(work, 'key.pem');
    writeFileSync(ext, `${extensions.join('\n')}\n`);
    await runChecked('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      newKey,
      '-subj',
      subject,
      '-out',
      csr,
    ]);
    await runChecked('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      join(dir, CERT_FILES.ca),
      '-CAkey',
      join(dir, CERT_FILES.caKey),
      '-set_serial',
      `0x${randomBytes(16)
        .toString('hex')
        .replace(/^[89a-f]/, '1')}`,
      '-days',
      String(opts.days ?? 825),
      '-extfile',
      ext,
      '-out',
      join(work, 'cert.pem'),
    ]);
    // Write the final files only once both steps worked; the key never exists with wider modes.
    writeFileSync(key, '', { mode: 0o600 });
    writeKey(key);
    writeFileSync(key, readFileSync(newKey));
    writeFileSync(cert, readFileSync(join(work, 'cert.pem')), { mode: 0o644 });
    chmodSync(cert, 0o644);
    written.push(cert, key);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { dir, written, createdCa };
}

/** Creates the CA when missing, then `server-key.pem` and `server-cert.pem` with the SANs. */
export async function createServerCerts(opts: ServerCertOptions): Promise<CertResult> {
  const names = [...(opts.names?.length ? opts.names : defaultServerNames()), ...(opts.extraNames ?? [])];
  const sans = subjectAltNames(names);
  const first = names.find((n) => !isIP(n)) ?? names[0] ?? 'localhost';
  const r = await issue(
    opts.dir,
    'server',
    `/CN=${first.replace(/[/=\\]/g, '')}`,
    [
      `subjectAltName=${sans.join(',')}`,
      'extendedKeyUsage=serverAuth',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'basicConstraints=CA:FALSE',
    ],
    opts,
  );
  return { ...r, names: [...new Set(names)] };
}

/** Creates the CA when missing, then `key.pem` and `cert.pem` for a Docker API client. */
export async function createClientCerts(opts: ClientCertOptions): Promise<CertResult> {
  const cn = (opts.commonName ?? 'minipaas-client').replace(/[/=\\]/g, '');
  if (!cn) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'the client certificate needs a common name');
  return issue(
    opts.dir,
    'client',
    `/CN=${cn}`,
    ['extendedKeyUsage=clientAuth', 'keyUsage=critical,digitalSignature', 'basicConstraints=CA:FALSE'],
    opts,
  );
}
