/**
 * Stages an uploaded archive for a build without holding it in memory: the request body is streamed
 * to a file next to the staging dir (at most `uploads.maxBytes`), then unpacked by a child process
 * within the `uploads.*` limits (see archive.ts), so neither the upload nor its decompression can
 * grow the API's memory or block its event loop. A rejected upload leaves nothing behind.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { getCompileCacheDir } from 'node:module';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, type ErrorCode, MinipaasError } from '@minipaas/core';
import { type ArchiveLimits, type ExtractResult, meter, removeTree } from './archive.ts';
import { runProgram } from './executor.ts';
import type { ExtractReply } from './extract-process.ts';

/** The `uploads.*` settings. */
export interface UploadLimits extends ArchiveLimits {
  /** Largest upload accepted, compressed (`uploads.maxBytes`). */
  maxBytes: number;
}

/** The unpacker (a child process): bin/minipaas-extract.js runs extract-process.ts as prebuilt JavaScript. */
const EXTRACT_SCRIPT = fileURLToPath(new URL('../../bin/minipaas-extract.js', import.meta.url));
/** Heap of the unpacker: unpacking is streamed and needs little; a runaway one dies instead. */
const CHILD_HEAP_MB = 128;
/** Longest an extraction may take (a 100k-entry archive takes well under a minute). */
const EXTRACT_TIMEOUT_MS = 10 * 60_000;

export function uploadTooLarge(maxBytes: number): MinipaasError {
  return new MinipaasError(
    'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
    `upload is larger than ${maxBytes} bytes (uploads.maxBytes)`,
  );
}

/**
 * Writes `body` to `file` (created, mode 0600), refusing more than `maxBytes`. The body stream is
 * not destroyed on refusal, so that the 413 can still be answered. Returns the bytes written.
 */
export async function receiveUpload(body: Readable, file: string, maxBytes: number): Promise<number> {
  let received = 0;
  const limiter = meter((chunk) => {
    received += chunk.length;
    if (received > maxBytes) throw uploadTooLarge(maxBytes);
    return true;
  });
  const onError = (err: Error) => limiter.destroy(err);
  const onClose = () => {
    if (!body.readableEnded)
      limiter.destroy(new MinipaasError('MINIPAAS_ERR_BAD_ARCHIVE', 'the upload was interrupted'));
  };
  body.once('error', onError);
  body.once('close', onClose);
  body.pipe(limiter);
  try {
    await pipeline(limiter, createWriteStream(file, { flags: 'wx', mode: 0o600 }));
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  } finally {
    body.off('error', onError);
    body.off('close', onClose);
    body.unpipe(limiter);
  }
  return received;
}

function fromReply(reply: ExtractReply & { ok: false }): MinipaasError {
  if (reply.code && reply.code in ERROR_CODES)
    return new MinipaasError(reply.code as ErrorCode, reply.message);
  return new MinipaasError('MINIPAAS_ERR_BAD_ARCHIVE', `cannot unpack archive: ${reply.message}`);
}

/**
 * Unpacks `file` into `dir` in a child process (extract-process.ts, run through the executor): its
 * memory is not the control plane's, and a runaway extraction is killed after `EXTRACT_TIMEOUT_MS`.
 */
export async function extractInChild(
  file: string,
  dir: string,
  limits: ArchiveLimits,
): Promise<ExtractResult> {
  const lines: string[] = [];
  const cacheDir = getCompileCacheDir();
  const res = await runProgram(
    process.execPath,
    [`--max-old-space-size=${CHILD_HEAP_MB}`, EXTRACT_SCRIPT, file, dir, JSON.stringify(limits)],
    {
      cwd: dirname(dir),
      // Only PATH, plus minipaasd's compile cache so that the unpacker starts fast.
      env: { PATH: process.env.PATH ?? '', ...(cacheDir ? { NODE_COMPILE_CACHE: cacheDir } : {}) },
      timeoutMs: EXTRACT_TIMEOUT_MS,
      onLine: (l) => {
        lines.push(l);
        if (lines.length > 20) lines.shift();
      },
    },
  );
  // The child's last JSON line is its reply (it writes it itself, so it parses).
  const last = lines.findLast((l) => l.startsWith('{"ok":'));
  const reply = last ? (JSON.parse(last) as ExtractReply) : null;
  if (reply?.ok) return { entries: reply.entries, bytes: reply.bytes };
  if (reply) throw fromReply(reply);
  const why = res.timedOut ? 'timed out' : `exit ${res.code ?? res.signal}: ${lines.at(-1) ?? 'no output'}`;
  throw new MinipaasError('MINIPAAS_ERR_BAD_ARCHIVE', `cannot unpack archive (the unpacker ${why})`);
}

/**
 * Streams `body` to `<staging>.upload`, unpacks it into `staging` within `limits`, and deletes the
 * upload file. On failure `staging` is deleted too, and the error (4xx) is thrown.
 */
export async function stageUpload(
  body: Readable,
  staging: string,
  limits: UploadLimits,
): Promise<ExtractResult> {
  const file = `${staging}.upload`;
  try {
    await mkdir(dirname(staging), { recursive: true });
    await receiveUpload(body, file, limits.maxBytes);
    return await extractInChild(file, staging, {
      maxUnpackedBytes: limits.maxUnpackedBytes,
      maxFileBytes: limits.maxFileBytes,
      maxEntries: limits.maxEntries,
      maxRatio: limits.maxRatio,
    });
  } catch (err) {
    await removeTree(staging);
    throw err;
  } finally {
    await rm(file, { force: true });
  }
}
