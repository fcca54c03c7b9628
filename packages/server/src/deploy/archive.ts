/**
 * Safe, bounded unpacking of uploaded source archives (gzipped or plain tar), streamed from a file:
 * the archive is never held in memory. Every entry is checked before it is written (absolute paths,
 * `..` segments, links pointing outside the tree and device files are refused with
 * MINIPAAS_ERR_BAD_ARCHIVE), and the limits are checked while unpacking: entry count, size of each
 * file, total size and compression ratio. The first breach stops the extraction, deletes what was
 * written and throws MINIPAAS_ERR_PAYLOAD_TOO_LARGE naming the limit and its setting.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { MinipaasError } from '@minipaas/core/errors'; // not the index: the unpacker starts without zod
import type { ReadEntry, Unpack as TarUnpack } from 'tar';

/** Limits on what one archive may unpack to (the `uploads.*` settings). */
export interface ArchiveLimits {
  /** Most bytes all files together may unpack to (`uploads.maxUnpackedBytes`). */
  maxUnpackedBytes: number;
  /** Largest single file (`uploads.maxFileBytes`). */
  maxFileBytes: number;
  /** Most entries: files, directories and links (`uploads.maxEntries`). */
  maxEntries: number;
  /** Largest unpacked/compressed ratio, applied once more than 1 MiB is unpacked (`uploads.maxRatio`). */
  maxRatio: number;
}

/** What an extraction wrote. */
export interface ExtractResult {
  /** Entries written (files, directories, links). */
  entries: number;
  /** Bytes of file content written. */
  bytes: number;
}

/** The ratio limit applies once the unpacked stream is larger than this. */
export const RATIO_GRACE_BYTES = 1024 * 1024;
/** Tar overhead allowed per entry on top of the file bytes (header, padding, extended headers). */
const OVERHEAD_PER_ENTRY = 2048;
/** Compressed bytes read at a time: keeps the ratio check within a small window. */
const READ_CHUNK = 16 * 1024;

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/**
 * Stands in for node-tar's path reservations, which keep every entry's closure (and with it the
 * entry) until the extraction ends: a few KB per entry, hundreds of MB for a 100k-entry bomb.
 * Entries are written one after the other instead, and nothing is retained once written.
 */
class SerialReservations {
  readonly #queue: Array<(done: () => void) => void> = [];
  #busy = false;

  reserve(_paths: string[], fn: (done: () => void) => void): boolean {
    this.#queue.push(fn);
    this.#next();
    return true;
  }

  #next(): void {
    if (this.#busy) return;
    const fn = this.#queue.shift();
    if (!fn) return;
    this.#busy = true;
    fn(() => {
      this.#busy = false;
      queueMicrotask(() => this.#next());
    });
  }
}

function bad(message: string): MinipaasError {
  return new MinipaasError('MINIPAAS_ERR_BAD_ARCHIVE', message);
}

function tooLarge(message: string): MinipaasError {
  return new MinipaasError('MINIPAAS_ERR_PAYLOAD_TOO_LARGE', message);
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

/**
 * A pass-through stream that hands every chunk to `check` first: `check` throws to stop the flow, and
 * returns false to drop the chunk (true passes it on).
 */
export function meter(check: (chunk: Buffer) => boolean): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      let keep: boolean;
      try {
        keep = check(chunk);
      } catch (err) {
        done(err as Error);
        return;
      }
      done(null, keep ? chunk : undefined);
    },
  });
}

async function readHead(file: string): Promise<{ head: Buffer; size: number }> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(2);
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    return { head: head.subarray(0, bytesRead), size };
  } finally {
    await fh.close();
  }
}

/**
 * Unpacks the archive in `file` into `dir` (created), streaming, within `limits`. On any failure,
 * what was written is deleted (`dir` included) before the error is thrown: MINIPAAS_ERR_BAD_ARCHIVE
 * for unsafe or unreadable archives, MINIPAAS_ERR_PAYLOAD_TOO_LARGE for a breached limit.
 */
export async function extractArchive(
  file: string,
  dir: string,
  limits: ArchiveLimits,
): Promise<ExtractResult> {
  const { head, size } = await readHead(file);
  if (size === 0) throw bad('the uploaded archive is empty');
  const gzipped = isGzip(head);
  const maxStream = limits.maxUnpackedBytes + limits.maxEntries * OVERHEAD_PER_ENTRY;
  let streamed = 0;
  let entries = 0;
  let bytes = 0;
  let failure: MinipaasError | null = null;

  const onEntry = (e: ReadEntry): void => {
    checkEntry(e);
    entries++;
    if (entries > limits.maxEntries)
      throw tooLarge(`archive has more than ${limits.maxEntries} entries (uploads.maxEntries)`);
    if (!FILE_TYPES.has(e.type)) return;
    const entrySize = e.size ?? 0;
    if (entrySize > limits.maxFileBytes)
      throw tooLarge(
        `archive entry "${e.path}" is larger than ${limits.maxFileBytes} bytes (uploads.maxFileBytes)`,
      );
    bytes += entrySize;
    if (bytes > limits.maxUnpackedBytes)
      throw tooLarge(
        `archive unpacks to more than ${limits.maxUnpackedBytes} bytes (uploads.maxUnpackedBytes)`,
      );
  };

  await mkdir(dir, { recursive: true });
  // node-tar (~1.4 MiB once loaded) is loaded by the first upload, not when minipaasd starts.
  const { Unpack } = await import('tar');
  const source = createReadStream(file, { highWaterMark: READ_CHUNK });
  const gunzip = gzipped ? createGunzip() : null;
  let lead = Buffer.alloc(0);
  // After the end-of-archive blocks the parser would buffer everything that follows (quadratically):
  // from then on the rest is only metered, never handed to it.
  let ended = false;
  const tarStream = meter((chunk) => {
    if (lead.length < 2) {
      lead = Buffer.concat([lead, chunk.subarray(0, 2 - lead.length)]);
      // The parser would gunzip a nested gzip on its own, unmetered: refuse it.
      if (isGzip(lead)) throw bad('archive is compressed twice (expected a gzipped tarball)');
    }
    streamed += chunk.length;
    if (streamed > maxStream)
      throw tooLarge(
        `archive unpacks to more than ${limits.maxUnpackedBytes} bytes (uploads.maxUnpackedBytes)`,
      );
    // bytesWritten: compressed bytes the inflater has consumed so far, not merely read ahead.
    if (gunzip && streamed > RATIO_GRACE_BYTES && streamed > gunzip.bytesWritten * limits.maxRatio)
      throw tooLarge(
        `archive expands more than ${limits.maxRatio} times its compressed size (uploads.maxRatio)`,
      );
    return !ended;
  });
  const unpack = new Unpack({
    cwd: dir,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    // Decompression happens above, metered; the parser must never decompress on its own.
    zstd: false,
    brotli: false,
    filter: (_path, entry) => {
      if (failure) return false;
      try {
        onEntry(entry as ReadEntry);
        return true;
      } catch (err) {
        failure = err as MinipaasError;
        // Stop the flow outside the parser's own call stack; the refused entry is never written.
        queueMicrotask(() => tarStream.destroy(failure ?? undefined));
        return false;
      }
    },
  });
  unpack.reservations = new SerialReservations() as unknown as TarUnpack['reservations'];
  unpack.on('eof', () => {
    ended = true;
  });
  const stages = gunzip ? [source, gunzip, tarStream, unpack] : [source, tarStream, unpack];
  try {
    await pipeline(stages as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
    if (entries === 0) throw bad('the uploaded archive contains no files (expected a gzipped tarball)');
  } catch (err) {
    source.destroy();
    await removeTree(dir);
    if (failure) throw failure;
    if (err instanceof MinipaasError) throw err;
    throw bad(
      `cannot read archive: ${(err as Error).message}${gzipped ? '' : ' (expected a gzipped tarball)'}`,
    );
  }
  return { entries, bytes };
}

/** Deletes a partly written tree; writes still in flight may briefly recreate files, hence the retries. */
export async function removeTree(dir: string): Promise<void> {
  await new Promise((r) => setImmediate(r));
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
}
