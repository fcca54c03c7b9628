/**
 * Container logs as platform {@link LogLine}s: Docker's multiplexed stream (8-byte frame headers: stream
 * 1 stdout, 2 stderr, then a big-endian length) with `timestamps: true` (RFC 3339 time, a space, the line).
 */
import type { LogLine } from '@minipaas/core';
import type Docker from 'dockerode';

/** A container's instance and process type, and the values its lines show as `********` (secrets). */
type Meta = { instance: string; processType: string; mask?: readonly string[] };

/** What a masked value becomes in a log line (as in the agent's captured logs). */
const MASK = '********';

/** `line` with every one of `values` replaced by {@link MASK} (longest first). */
export function maskValues(line: string, values: readonly string[] | undefined): string {
  let out = line;
  for (const v of values ?? []) if (v && out.includes(v)) out = out.split(v).join(MASK);
  return out;
}

/** Splits a finished multiplexed log buffer into lines. */
export function demuxLogs(buf: Buffer, m: Meta): LogLine[] {
  const out: LogLine[] = [];
  const parser = new FrameParser(m, (l) => out.push(l));
  parser.push(buf);
  parser.end();
  return out;
}

/** Incremental parser of the multiplexed stream: `push` chunks, `end` flushes partial lines. */
export class FrameParser {
  #pending = Buffer.alloc(0);
  readonly #partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  readonly #m: Meta;
  readonly #emit: (l: LogLine) => void;

  constructor(m: Meta, emit: (l: LogLine) => void) {
    this.#m = { ...m, mask: [...(m.mask ?? [])].sort((a, b) => b.length - a.length) };
    this.#emit = emit;
  }

  push(chunk: Buffer): void {
    this.#pending = Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 8) {
      const len = this.#pending.readUInt32BE(4);
      if (this.#pending.length < 8 + len) break;
      const stream = this.#pending[0] === 2 ? 'stderr' : 'stdout';
      const text = this.#partial[stream] + this.#pending.subarray(8, 8 + len).toString('utf8');
      this.#pending = this.#pending.subarray(8 + len);
      const lines = text.split('\n');
      this.#partial[stream] = lines.pop() ?? '';
      for (const l of lines) this.#line(stream, l);
    }
  }

  end(): void {
    for (const s of ['stdout', 'stderr'] as const) if (this.#partial[s]) this.#line(s, this.#partial[s]);
  }

  #line(stream: 'stdout' | 'stderr', raw: string): void {
    const sp = raw.indexOf(' ');
    const ts = sp > 0 && /^\d{4}-\d\d-\d\dT/.test(raw) ? raw.slice(0, sp) : new Date().toISOString();
    const line = sp > 0 && ts === raw.slice(0, sp) ? raw.slice(sp + 1) : raw;
    this.#emit({
      ts: normalizeTs(ts),
      instance: this.#m.instance,
      processType: this.#m.processType,
      stream,
      line: maskValues(line, this.#m.mask),
    });
  }
}

function normalizeTs(ts: string): string {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? new Date().toISOString() : d.toISOString();
}

export interface FollowOptions {
  docker: Docker;
  /** The containers to follow (looked up again every second for new ones). */
  list(): Promise<Docker.ContainerInfo[]>;
  meta(c: Docker.ContainerInfo): Meta | Promise<Meta>;
  tail: number;
  signal?: AbortSignal;
}

/** Follows the logs of every container of an app, new containers included, until `signal` aborts. */
export async function* followContainerLogs(o: FollowOptions): AsyncIterable<LogLine> {
  const queue: LogLine[] = [];
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const followed = new Map<string, NodeJS.ReadableStream>();
  let failure: unknown = null;
  const attach = async (first: boolean) => {
    for (const c of await o.list()) {
      if (followed.has(c.Id) || c.State !== 'running') continue;
      const m = await o.meta(c);
      const stream = (await o.docker.getContainer(c.Id).logs({
        stdout: true,
        stderr: true,
        timestamps: true,
        follow: true,
        tail: first ? o.tail : 0,
      })) as unknown as NodeJS.ReadableStream;
      followed.set(c.Id, stream);
      const p = new FrameParser(m, (l) => {
        queue.push(l);
        notify();
      });
      stream.on('data', (b: Buffer) => p.push(b));
      stream.on('end', () => {
        p.end();
        followed.delete(c.Id);
      });
      stream.on('error', () => followed.delete(c.Id));
    }
  };
  const poll = setInterval(() => {
    attach(false).catch((err) => {
      failure = err;
      notify();
    });
  }, 1000);
  const onAbort = () => notify();
  o.signal?.addEventListener('abort', onAbort);
  try {
    await attach(true);
    while (!o.signal?.aborted) {
      if (failure) throw failure;
      const l = queue.shift();
      if (l) {
        yield l;
        continue;
      }
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  } finally {
    clearInterval(poll);
    o.signal?.removeEventListener('abort', onAbort);
    for (const s of followed.values()) (s as unknown as { destroy?: () => void }).destroy?.();
  }
}
