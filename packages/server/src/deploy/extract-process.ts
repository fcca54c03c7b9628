/**
 * Child-process entry that unpacks one upload (see `extractInChild` in upload-staging.ts), so that
 * decompression and parsing run neither on the API's event loop nor in its memory.
 *
 * Usage: node extract-process.ts FILE DIR LIMITS_JSON. Prints one JSON line (an ExtractReply) last.
 */
import { isMinipaasError } from '@minipaas/core/errors'; // not the index: the unpacker starts without zod
import { type ArchiveLimits, extractArchive } from './archive.ts';

/** What the child prints: the result, or the error's code and message. */
export type ExtractReply =
  | { ok: true; entries: number; bytes: number }
  | { ok: false; code: string | null; message: string };

const [file, dir, limitsJson] = process.argv.slice(2);
let reply: ExtractReply;
try {
  if (!file || !dir || !limitsJson) throw new Error('usage: extract-process.ts FILE DIR LIMITS_JSON');
  const limits = JSON.parse(limitsJson) as ArchiveLimits;
  reply = { ok: true, ...(await extractArchive(file, dir, limits)) };
} catch (err) {
  reply = { ok: false, code: isMinipaasError(err) ? err.code : null, message: (err as Error).message };
}
process.stdout.write(`${JSON.stringify(reply)}\n`);
process.exitCode = reply.ok ? 0 : 1;
