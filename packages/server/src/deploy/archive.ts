/**
 * Safe handling of uploaded source archives (gzipped or plain tar). Every entry is checked before
 * anything is written: absolute paths, `..` segments, links pointing outside the tree, device files
 * and oversized trees are refused with MINIPAAS_ERR_BAD_ARCHIVE.
 */
import { mkdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MinipaasError } from '@minipaas/core';
import { Parser, type ReadEntry, Unpack } from 'tar';

export interface ArchiveLimits {
  /** Maximum total unpacked size in bytes. */
  maxUnpackedBytes: number;
  /** Maximum number of entries. */
  maxEntries: number;
}

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

function bad(message: string): MinipaasError {
  return new MinipaasError('MINIPAAS_ERR_BAD_ARCHIVE', message);
}

/** Returns the normalised relative path, or throws when it escapes the root. */
export function safeEntryPath(raw: string): string {
  if (raw.includes('\0')) throw bad('archive entry name contains a NUL byte');
  const p = raw.replace(/\\/g, '/');
  if (p.startsWith('/') || /^[a-zA-Z]:/.test(p)) throw bad(`archive entry "${raw}" has an absolute path`);
  if (p.split('/').includes('..')) throw bad(`archive entry "${raw}" contains ".." (path traversal)`);
  const norm = posix.normalize(p);
  if (norm === '..' || norm.startsWith('../')) throw bad(`archive entry "${raw}" escapes the app directory`);
  return norm;
}

function checkEntry(e: ReadEntry): void {
  if (
    e.type === 'ExtendedHeader' ||
    e.type === 'GlobalExtendedHeader' ||
    e.type === 'NextFileHasLongPath' ||
    e.type === 'NextFileHasLongLinkpath'
  )
    return;
  if (!ALLOWED_TYPES.has(e.type)) throw bad(`archive entry "${e.path}" has unsupported type ${e.type}`);
  const path = safeEntryPath(e.path);
  if (e.type === 'SymbolicLink' || e.type === 'Link') {
    const target = e.linkpath ?? '';
    if (target.startsWith('/')) throw bad(`archive link "${e.path}" points to an absolute path`);
    const base = e.type === 'Link' ? '' : posix.dirname(path);
    const resolved = posix.normalize(posix.join(base, target));
    if (resolved === '..' || resolved.startsWith('../'))
      throw bad(`archive link "${e.path}" points outside the app directory`);
  }
}

function isGzip(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** Validates every entry of the archive without writing anything. Returns the entry paths. */
export async function inspectArchive(buf: Buffer, limits: ArchiveLimits): Promise<string[]> {
  if (buf.length === 0) throw bad('the uploaded archive is empty');
  const paths: string[] = [];
  let total = 0;
  let failure: MinipaasError | null = null;
  const parser = new Parser({
    strict: true,
    onReadEntry: (e: ReadEntry) => {
      try {
        if (failure) return;
        checkEntry(e);
        total += e.size ?? 0;
        paths.push(e.path);
        if (paths.length > limits.maxEntries) throw bad(`archive has more than ${limits.maxEntries} entries`);
        if (total > limits.maxUnpackedBytes)
          throw bad(`archive unpacks to more than ${limits.maxUnpackedBytes} bytes`);
      } catch (err) {
        failure = err as MinipaasError;
      } finally {
        e.resume();
      }
    },
  });
  try {
    await pipeline(Readable.from([buf]), parser);
  } catch (err) {
    if (failure) throw failure;
    throw bad(
      `cannot read archive: ${(err as Error).message}${isGzip(buf) ? '' : ' (expected a gzipped tarball)'}`,
    );
  }
  if (failure) throw failure;
  if (paths.length === 0) throw bad('the uploaded archive contains no files (expected a gzipped tarball)');
  return paths;
}

/** Extracts an archive that passed `inspectArchive` into `dir`. */
export async function extractArchive(buf: Buffer, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const unpack = new Unpack({ cwd: dir, strict: true, preservePaths: false, preserveOwner: false });
  await pipeline(Readable.from([buf]), unpack);
}
