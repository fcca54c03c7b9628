/**
 * `minipaas images:bootstrap`: the platform's base images without a registry. A Debian bookworm root
 * filesystem from `debootstrap --variant=minbase` against the apt source configured on this machine,
 * imported as {@link BASE_IMAGE}; then {@link NODE_IMAGE} built on it with the platform's own Node binary.
 * Both are cached by tag: a machine that has them skips the work (`force` rebuilds).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';
import { pack } from 'tar-fs';

const run = promisify(execFile);

export const BASE_IMAGE = 'minipaas/base:bookworm';
export const NODE_IMAGE = 'minipaas/node:24';

export interface BootstrapOptions {
  docker: Docker;
  /** Node binary copied into the Node image (default: the one running the platform). */
  nodeBin?: string;
  /** Debian mirror URI (default: the first `URIs:`/`deb` line of the machine's apt sources). */
  mirror?: string;
  /** Rebuild even when the tags exist. */
  force?: boolean;
  /** Progress lines. */
  onLine?: (line: string) => void;
}

export interface BootstrapResult {
  images: { ref: string; built: boolean; ms: number }[];
}

/** The first Debian mirror configured for apt (deb822 `.sources` files or a classic sources.list). */
export function aptMirror(etc = '/etc/apt'): string {
  const files: string[] = [];
  const d = join(etc, 'sources.list.d');
  if (existsSync(d))
    for (const f of readdirSync(d).sort()) if (/\.(sources|list)$/.test(f)) files.push(join(d, f));
  if (existsSync(join(etc, 'sources.list'))) files.push(join(etc, 'sources.list'));
  for (const f of files) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const t = line.trim();
      const m = /^URIs:\s*(\S+)/.exec(t) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\b/.exec(t);
      if (m?.[1] && /^https?:\/\//.test(m[1])) return m[1];
    }
  }
  throw new MinipaasError(
    'MINIPAAS_ERR_TOOL_MISSING',
    'no Debian mirror is configured for apt on this machine',
  );
}

async function hasImage(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

/** Builds whatever of the base and Node images is missing. Runs as root (debootstrap needs it). */
export async function bootstrapImages(o: BootstrapOptions): Promise<BootstrapResult> {
  const say = o.onLine ?? (() => undefined);
  const images: BootstrapResult['images'] = [];
  let t = Date.now();
  if (!o.force && (await hasImage(o.docker, BASE_IMAGE))) {
    images.push({ ref: BASE_IMAGE, built: false, ms: 0 });
    say(`${BASE_IMAGE} is present`);
  } else {
    await buildBase(o, say);
    images.push({ ref: BASE_IMAGE, built: true, ms: Date.now() - t });
  }
  t = Date.now();
  if (!o.force && (await hasImage(o.docker, NODE_IMAGE))) {
    images.push({ ref: NODE_IMAGE, built: false, ms: 0 });
    say(`${NODE_IMAGE} is present`);
  } else {
    await buildNode(o, say);
    images.push({ ref: NODE_IMAGE, built: true, ms: Date.now() - t });
  }
  return { images };
}

async function buildBase(o: BootstrapOptions, say: (l: string) => void): Promise<void> {
  if (!existsSync('/usr/sbin/debootstrap'))
    throw new MinipaasError(
      'MINIPAAS_ERR_TOOL_MISSING',
      'debootstrap is not installed (apt-get install -y debootstrap)',
    );
  const mirror = o.mirror ?? aptMirror();
  const work = await mkdtemp(join(tmpdir(), 'minipaas-rootfs-'));
  const rootfs = join(work, 'rootfs');
  try {
    say(`debootstrap --variant=minbase bookworm from ${mirror} (about 30 s)`);
    await run('/usr/sbin/debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror], {
      maxBuffer: 64 * 1024 * 1024,
    });
    await rm(join(rootfs, 'var/cache/apt/archives'), { recursive: true, force: true });
    say(`importing ${BASE_IMAGE}`);
    const [repo, tag] = BASE_IMAGE.split(':') as [string, string];
    // GNU tar (argument array, no shell): the root filesystem holds device nodes tar-fs cannot pack.
    const tar = spawn('tar', ['-C', rootfs, '--numeric-owner', '-c', '.'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tarErr = '';
    tar.stderr.on('data', (b: Buffer) => {
      tarErr += b.toString();
    });
    const tarDone = new Promise<void>((resolve, reject) =>
      tar.once('close', (code) =>
        code === 0
          ? resolve()
          : reject(new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', `tar failed: ${tarErr.trim()}`)),
      ),
    );
    const stream = await o.docker.importImage(tar.stdout, { repo, tag });
    await Promise.all([follow(o.docker, stream), tarDone]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function buildNode(o: BootstrapOptions, say: (l: string) => void): Promise<void> {
  const nodeBin = o.nodeBin ?? process.execPath;
  const work = await mkdtemp(join(tmpdir(), 'minipaas-nodeimg-'));
  try {
    await copyFile(nodeBin, join(work, 'node'));
    await writeFile(
      join(work, 'Dockerfile'),
      [
        `FROM ${BASE_IMAGE}`,
        'COPY node /usr/local/bin/node',
        'RUN chmod 755 /usr/local/bin/node && node --version',
        'WORKDIR /app',
        'CMD ["node"]',
        '',
      ].join('\n'),
    );
    say(`building ${NODE_IMAGE} with ${nodeBin}`);
    const stream = await o.docker.buildImage(pack(work) as unknown as NodeJS.ReadableStream, {
      t: NODE_IMAGE,
      rm: true,
    });
    await follow(o.docker, stream);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function follow(docker: Docker, stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve, reject) =>
    docker.modem.followProgress(
      stream,
      (err: Error | null) => (err ? reject(err) : resolve()),
      (ev: { error?: string }) => {
        if (ev.error) reject(new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', ev.error));
      },
    ),
  );
}
