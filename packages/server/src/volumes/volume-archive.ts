/**
 * Backup and restore of one volume as a gzipped tarball. A backup streams the tree as it is (links are
 * stored as links, never followed). A restore unpacks into a staging directory beside the volume with the
 * deploy pipeline's bounded extractor (deploy/archive.ts: absolute paths, `..`, links pointing out of the
 * tree, device files → 400; entry count, total size, file size and compression ratio → 413), and only
 * then replaces the volume's contents, so a refused tarball changes nothing.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { MinipaasError } from '@minipaas/core';
import { type ArchiveLimits, extractArchive, meter } from '../deploy/archive.ts';

const execFileP = promisify(execFile);

/** A gzipped tarball of the volume directory `root` (entries relative to it), as a stream. */
export async function backupStream(root: string): Promise<Readable> {
  // Loaded by the first backup, not when minipaasd starts.
  const { create: createTar } = await import('tar');
  return createTar({ gzip: true, cwd: root, portable: true, follow: false }, ['.']) as unknown as Readable;
}

/**
 * Replaces the contents of `root` with the tarball read from `body` (at most `maxCompressedBytes`),
 * within `limits`. The volume root keeps its owner, and everything restored is given to it.
 * Resolves with the entries and bytes restored.
 */
export async function restoreInto(
  root: string,
  body: Readable,
  limits: ArchiveLimits & { maxCompressedBytes: number },
): Promise<{ entries: number; bytes: number }> {
  const tag = randomBytes(6).toString('hex');
  const parent = dirname(root);
  const file = join(parent, `.restore-${tag}.tar.gz`);
  const staging = join(parent, `.restore-${tag}`);
  try {
    let received = 0;
    await pipeline(
      body,
      meter((chunk) => {
        received += chunk.length;
        if (received > limits.maxCompressedBytes)
          throw new MinipaasError(
            'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
            `the tarball is larger than ${limits.maxCompressedBytes} bytes`,
          );
        return true;
      }),
      createWriteStream(file, { mode: 0o600 }),
    );
    const result = await extractArchive(file, staging, limits);
    const st = await lstat(root);
    for (const name of await readdir(root)) await rm(join(root, name), { recursive: true, force: true });
    for (const name of await readdir(staging)) {
      const dest = join(root, name);
      await rename(join(staging, name), dest);
      if (process.getuid?.() === 0)
        await execFileP('chown', ['-R', '-P', '-h', `${st.uid}:${st.gid}`, '--', dest]);
    }
    return result;
  } finally {
    await rm(file, { force: true });
    await rm(staging, { recursive: true, force: true });
  }
}
