/**
 * Docker's multiplexed log stream (8-byte frame headers: stream 1 stdout, 2 stderr, then a big-endian
 * length) with `timestamps: true`, split into platform {@link LogLine}s. Chunks may cut frames anywhere.
 */
import type { LogLine } from '@minipaas/core';

export class LogFrames {
  #pending = Buffer.alloc(0);
  readonly #partial = { stdout: '', stderr: '' };
  readonly #meta: { instance: string; processType: string };
  readonly #emit: (l: LogLine) => void;

  constructor(meta: { instance: string; processType: string }, emit: (l: LogLine) => void) {
    this.#meta = meta;
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
    for (const s of ['stdout', 'stderr'] as const) {
      if (this.#partial[s]) this.#line(s, this.#partial[s]);
      this.#partial[s] = '';
    }
  }

  #line(stream: 'stdout' | 'stderr', raw: string): void {
    // Service logs carry "TIMESTAMP task-details LINE" with details off: "TIMESTAMP LINE".
    const sp = raw.indexOf(' ');
    const head = sp > 0 ? raw.slice(0, sp) : '';
    const stamped = /^\d{4}-\d\d-\d\dT/.test(head) && !Number.isNaN(Date.parse(head));
    this.#emit({
      ts: stamped ? new Date(head).toISOString() : new Date().toISOString(),
      instance: this.#meta.instance,
      processType: this.#meta.processType,
      stream,
      line: stamped ? raw.slice(sp + 1) : raw,
    });
  }
}
