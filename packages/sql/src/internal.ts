import { MinipaasSqlError } from './errors.ts';
import type { SqlExecutor } from './executor.ts';

/** Where a call goes: used to label errors. */
export interface Target {
  kind: 'queue' | 'stream';
  name: string;
}

/** Runs one client statement and wraps any failure in a MinipaasSqlError naming function and target. */
export async function call<R>(
  db: SqlExecutor,
  target: Target,
  sqlFunction: string,
  text: string,
  params: readonly unknown[],
): Promise<R[]> {
  try {
    const res = await db.query<R>(text, params, { name: `mp_${hash(text)}` });
    return res.rows;
  } catch (err) {
    const e = err as { message?: unknown; code?: unknown };
    throw new MinipaasSqlError(typeof e?.message === 'string' ? e.message : String(err), {
      sqlFunction,
      [target.kind]: target.name,
      code: typeof e?.code === 'string' ? e.code : undefined,
      cause: err,
    });
  }
}

/** Two independent 32-bit hashes (FNV-1a and djb2), base 36: a short, stable statement name. */
function hash(text: string): string {
  let a = 0x811c9dc5;
  let b = 5381;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = (Math.imul(b, 33) + c) | 0;
  }
  return `${(a >>> 0).toString(36)}${(b >>> 0).toString(36)}`;
}

/** Milliseconds as a Postgres interval literal, or null. */
export function ms(
  value: number | undefined | null,
  what: string,
  sqlFunction: string,
  target: Target,
): string | null {
  if (value === undefined || value === null) return null;
  if (!Number.isFinite(value) || value < 0) {
    throw new MinipaasSqlError(`${what} must be a non-negative number of milliseconds, got ${value}`, {
      sqlFunction,
      [target.kind]: target.name,
      code: '22023',
    });
  }
  return `${Math.round(value)} milliseconds`;
}

/** int8 from either driver (pg: string, PGlite: number) to a JS number. */
export function num(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}

export function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(String(value));
}

/** Resolves after `ms`, or early when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
