/**
 * File operations inside one volume directory: list, streamed download, streamed upload with the quota
 * enforced while the bytes arrive, mkdir -p and delete. Every path goes through volume-paths.ts first;
 * what the platform creates belongs to the owner of the volume root (the app's uid on the process runtime).
 */
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, type Dirent, type ReadStream, type Stats } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { MinipaasError } from '@minipaas/core';
import { assertFdInside, fileName, pathSegments, realRoot, resolveInside } from './volume-paths.ts';

/** One directory entry as the API lists it. */
export interface VolumeEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  /** Bytes (files), 0 otherwise. */
  size: number;
  modifiedAt: string;
}

/** Size and counts of a volume's tree (symbolic links are counted, never followed). */
export interface VolumeUsage {
  bytes: number;
  files: number;
  directories: number;
}

/** Walks the tree under `dir` with lstat: sizes of regular files, counts of files and directories. */
export async function usage(dir: string): Promise<VolumeUsage> {
  const out: VolumeUsage = { bytes: 0, files: 0, directories: 0 };
  const walk = async (d: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed meanwhile by the app
      throw err;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        out.directories++;
        await walk(p);
      } else if (e.isFile()) {
        out.files++;
        try {
          out.bytes += (await lstat(p)).size;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      } else {
        out.files++;
      }
    }
  };
  await walk(dir);
  return out;
}

/** Gives `path` to the owner of the volume root (no-op when the platform is not root). */
async function handOver(root: string, fh: FileHandle, display: string): Promise<void> {
  // Through the descriptor, after checking where it really is: a directory the app swapped for a
  // link meanwhile never gets a file outside the volume handed to the app.
  await assertFdInside(root, fh.fd, display);
  if (process.getuid?.() !== 0) return;
  const st = await lstat(root);
  if (st.uid !== 0 || st.gid !== 0) await fh.chown(st.uid, st.gid);
}

/** Lists a directory of the volume (`path` '' is the root). */
export async function listDir(root: string, path: unknown): Promise<VolumeEntry[]> {
  const real = await realRoot(root);
  const segs = pathSegments(path, { allowRoot: true });
  const { path: dir, stat } = await resolveInside(real, segs, { mustExist: true });
  if (!stat?.isDirectory())
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${segs.join('/')} is not a directory`);
  const entries = await readdir(dir, { withFileTypes: true });
  const out: VolumeEntry[] = [];
  for (const e of entries) {
    let st: Stats;
    try {
      st = await lstat(join(dir, e.name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    out.push({
      name: e.name,
      type: st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other',
      size: st.isFile() ? st.size : 0,
      modifiedAt: st.mtime.toISOString(),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Opens a regular file of the volume for a streamed download. */
export async function openFile(
  root: string,
  path: unknown,
): Promise<{ stream: ReadStream; size: number; name: string }> {
  const real = await realRoot(root);
  const segs = pathSegments(path);
  const display = segs.join('/');
  const { path: file, stat } = await resolveInside(real, segs, { mustExist: true });
  if (!stat?.isFile()) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${display} is not a regular file`);
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    await assertFdInside(real, fh.fd, display);
    const st = await fh.stat();
    if (!st.isFile()) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${display} is not a regular file`);
    return {
      stream: createReadStream('', { fd: fh, autoClose: true }),
      size: st.size,
      name: segs.at(-1) as string,
    };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** mkdir -p inside the volume; resolves with the directories created. */
export async function makeDirs(root: string, path: unknown): Promise<number> {
  const real = await realRoot(root);
  const segs = pathSegments(path);
  const { stat } = await resolveInside(real, segs);
  if (stat && !stat.isDirectory())
    throw new MinipaasError('MINIPAAS_ERR_CONFLICT', `${segs.join('/')} exists and is not a directory`);
  let created = 0;
  for (let i = 1; i <= segs.length; i++) {
    const { path: p, stat: st } = await resolveInside(real, segs.slice(0, i));
    if (st) continue;
    await mkdir(p, { mode: 0o755 });
    created++;
    const fh = await open(p, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      await handOver(real, fh, segs.slice(0, i).join('/'));
    } catch (err) {
      await rmdir(p); // refused: the empty directory it just made goes again
      throw err;
    } finally {
      await fh.close();
    }
  }
  return created;
}

/** Deletes a file, or a directory (non-empty only with `recursive`). Never the root. */
export async function removePath(root: string, path: unknown, recursive: boolean): Promise<void> {
  const real = await realRoot(root);
  const segs = pathSegments(path);
  const display = segs.join('/');
  const { path: p, stat } = await resolveInside(real, segs, { mustExist: true });
  if (stat?.isDirectory()) {
    if (!recursive && (await readdir(p)).length > 0)
      throw new MinipaasError(
        'MINIPAAS_ERR_CONFLICT',
        `directory ${display} is not empty: delete it with recursive=true`,
      );
    await rm(p, { recursive: true });
    return;
  }
  await unlink(p);
}

/** One file of an upload: its target directory and name, and the bytes. */
export interface UploadPart {
  name: string;
  stream: Readable;
}

/** What an upload wrote. */
export interface UploadedFile {
  path: string;
  size: number;
}

/**
 * Streams the parts of an upload into `dir` (a directory of the volume, created when missing) under
 * `maxBytes` total for the volume: each part goes to a hidden temporary file in the target directory,
 * counted as it arrives; past the quota the upload stops with 413 and the numbers. Only when every part
 * arrived are the temporary files renamed into place, so a refused upload changes nothing.
 */
export async function upload(
  root: string,
  dir: unknown,
  parts: AsyncIterable<UploadPart>,
  quota: { maxBytes: number; volume: string },
): Promise<UploadedFile[]> {
  const real = await realRoot(root);
  const dirSegs = pathSegments(dir, { allowRoot: true });
  const temps: Array<{ tmp: string; final: string; path: string; size: number }> = [];
  let createdTop: string | null = null;
  const before = await usage(real);
  let used = before.bytes;
  try {
    const target = await resolveInside(real, dirSegs);
    if (target.stat && !target.stat.isDirectory())
      throw new MinipaasError('MINIPAAS_ERR_CONFLICT', `${dirSegs.join('/')} is not a directory`);
    for await (const part of parts) {
      const name = fileName(part.name);
      const segs = [...dirSegs, name];
      const display = segs.join('/');
      const dest = await resolveInside(real, segs);
      if (dest.stat?.isDirectory())
        throw new MinipaasError('MINIPAAS_ERR_CONFLICT', `${display} is a directory`);
      // Replacing a file frees its bytes (when the upload completes).
      const replaced = dest.stat?.isFile() ? dest.stat.size : 0;
      if (dirSegs.length > 0 && !target.stat && createdTop === null) {
        // The first missing directory on the way goes again if the upload is refused.
        for (let i = 1; i <= dirSegs.length && createdTop === null; i++)
          if (!(await resolveInside(real, dirSegs.slice(0, i))).stat)
            createdTop = (await resolveInside(real, dirSegs.slice(0, i))).path;
        await makeDirs(real, dirSegs.join('/'));
      }
      const parent = (await resolveInside(real, dirSegs)).path;
      const tmp = join(parent, `.minipaas-upload-${randomBytes(8).toString('hex')}`);
      const fh = await open(
        tmp,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o644,
      );
      const entry = { tmp, final: dest.path, path: display, size: 0 };
      temps.push(entry);
      try {
        await handOver(real, fh, display);
        for await (const chunk of part.stream as AsyncIterable<Buffer>) {
          entry.size += chunk.length;
          if (used - replaced + entry.size > quota.maxBytes) {
            part.stream.resume(); // drain the rest of this part; the request is refused
            throw new MinipaasError(
              'MINIPAAS_ERR_VOLUME_QUOTA',
              `upload of ${display} exceeds the quota of volume "${quota.volume}": ${used} bytes used, file at least ${entry.size} bytes, limit ${quota.maxBytes} bytes`,
              { details: { usedBytes: used, fileBytes: entry.size, maxSizeBytes: quota.maxBytes } },
            );
          }
          await fh.write(chunk);
        }
        if ((part.stream as { truncated?: boolean }).truncated)
          throw new MinipaasError(
            'MINIPAAS_ERR_VOLUME_QUOTA',
            `upload of ${display} exceeds the quota of volume "${quota.volume}" (limit ${quota.maxBytes} bytes)`,
            { details: { usedBytes: used, maxSizeBytes: quota.maxBytes } },
          );
      } finally {
        await fh.close();
      }
      used += entry.size - replaced;
    }
    for (const t of temps) {
      // The destination may have become a link or directory meanwhile: check again, then rename over it.
      const st = await lstat(t.final).catch(() => null);
      if (st && !st.isFile())
        throw new MinipaasError(
          'MINIPAAS_ERR_VOLUME_PATH',
          `path "${t.path}" is refused: it is no longer a file`,
        );
      await rename(t.tmp, t.final);
      t.tmp = '';
    }
    return temps.map((t) => ({ path: t.path, size: t.size }));
  } catch (err) {
    for (const t of temps) if (t.tmp) await rm(t.tmp, { force: true });
    if (createdTop && temps.every((t) => t.tmp)) await rm(createdTop, { recursive: true, force: true });
    throw err;
  }
}
