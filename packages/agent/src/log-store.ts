import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogLine } from '@minipaas/core';

/** Options of the log store. */
export interface LogStoreOptions {
  /** Root directory; files live at `<dir>/<app>/<instance>.log`. */
  dir: string;
  /** Log files of stopped instances kept per app (oldest deleted first); default 50. */
  keepInstances?: number;
  /** Size at which a file is rotated. */
  maxBytes: number;
  /** Rotated files kept per instance (`.log.1` … `.log.N`). */
  files: number;
}

export type LogListener = (line: LogLine) => void;

const MAX_LINE = 16 * 1024;
const MASK = '********';

/** Writes one instance's lines as JSON lines, rotating by size. */
export class InstanceLog {
  readonly app: string;
  readonly instance: string;
  readonly processType: string;
  readonly file: string;
  private readonly store: LogStore;
  private mask: string[];
  private fd: number | null = null;
  private size = 0;
  private queue: string[] = [];
  private scheduled = false;
  private closed = false;
  /** The last lines of this instance, formatted for error reports. */
  readonly recent: string[] = [];

  constructor(store: LogStore, app: string, instance: string, processType: string, mask: string[]) {
    this.store = store;
    this.app = app;
    this.instance = instance;
    this.processType = processType;
    this.mask = mask.filter((m) => m.length > 0);
    this.file = join(store.options.dir, app, `${instance}.log`);
    store.track(this, true);
  }

  setMask(values: string[]): void {
    this.mask = values.filter((m) => m.length > 0);
  }

  /** Records one line (masked), notifies followers and queues it for the file. */
  write(stream: LogLine['stream'], text: string): void {
    let line = text.length > MAX_LINE ? `${text.slice(0, MAX_LINE)}…` : text;
    for (const m of this.mask) if (line.includes(m)) line = line.split(m).join(MASK);
    const entry: LogLine = {
      ts: new Date().toISOString(),
      instance: this.instance,
      processType: this.processType,
      stream,
      line,
    };
    this.queue.push(`${JSON.stringify(entry)}\n`);
    this.recent.push(stream === 'system' ? `[agent] ${line}` : line);
    if (this.recent.length > 50) this.recent.shift();
    this.store.emit(this.app, entry);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes queued lines to disk now. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const lines = this.queue;
    this.queue = [];
    const max = this.store.options.maxBytes;
    let chunk = '';
    let chunkBytes = 0;
    for (const l of lines) {
      const n = Buffer.byteLength(l);
      if (this.size + chunkBytes + n > max && this.size + chunkBytes > 0) {
        if (chunkBytes > 0) this.writeOut(chunk, chunkBytes);
        chunk = '';
        chunkBytes = 0;
        this.rotate();
      }
      chunk += l;
      chunkBytes += n;
    }
    if (chunkBytes > 0) this.writeOut(chunk, chunkBytes);
    // Lines that arrive after close (e.g. the last partial line of a dead process) do not keep a file open.
    if (this.closed) this.closeFd();
  }

  private closeFd(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }

  private open(): number {
    if (this.fd === null) {
      mkdirSync(join(this.store.options.dir, this.app), { recursive: true, mode: 0o750 });
      this.fd = openSync(this.file, 'a', 0o640);
      this.size = fstatSync(this.fd).size;
    }
    return this.fd;
  }

  private writeOut(chunk: string, bytes: number): void {
    try {
      writeSync(this.open(), chunk);
      this.size += bytes;
    } catch {
      // A full or vanished disk must never take the agent down; the line is still streamed to followers.
    }
  }

  private rotate(): void {
    this.closeFd();
    const keep = this.store.options.files;
    try {
      rmSync(`${this.file}.${keep}`, { force: true });
      for (let i = keep - 1; i >= 1; i--) {
        if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      }
      if (existsSync(this.file)) renameSync(this.file, `${this.file}.1`);
    } catch {
      // best effort
    }
    this.size = 0;
  }

  /** Flushes and closes the file; later lines are still appended, without keeping the file open. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    this.store.track(this, false);
    this.closeFd();
    this.store.prune(this.app);
  }
}

/** Per-app log files, live followers and tail reads. */
export class LogStore {
  readonly options: LogStoreOptions;
  private readonly listeners = new Map<string, Set<LogListener>>();
  private readonly writers = new Set<InstanceLog>();

  constructor(options: LogStoreOptions) {
    this.options = options;
  }

  open(app: string, instance: string, processType: string, mask: string[] = []): InstanceLog {
    return new InstanceLog(this, app, instance, processType, mask);
  }

  /** Subscribes to new lines of an app; returns the unsubscribe function. */
  subscribe(app: string, fn: LogListener): () => void {
    let set = this.listeners.get(app);
    if (!set) {
      set = new Set();
      this.listeners.set(app, set);
    }
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.listeners.delete(app);
    };
  }

  /** @internal */
  track(w: InstanceLog, open: boolean): void {
    if (open) this.writers.add(w);
    else this.writers.delete(w);
  }

  /** Deletes the files of the oldest stopped instances of an app beyond `keepInstances`. */
  prune(app: string): void {
    const keep = this.options.keepInstances ?? 50;
    const dir = join(this.options.dir, app);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    const open = new Set([...this.writers].filter((w) => w.app === app).map((w) => w.instance));
    const newest = new Map<string, number>();
    for (const name of names) {
      const id = /^(.+)\.log(?:\.\d+)?$/.exec(name)?.[1];
      if (!id || open.has(id)) continue;
      try {
        newest.set(id, Math.max(newest.get(id) ?? 0, statSync(join(dir, name)).mtimeMs));
      } catch {
        // vanished
      }
    }
    if (newest.size <= keep) return;
    const drop = [...newest.entries()].sort((a, b) => a[1] - b[1]).slice(0, newest.size - keep);
    const ids = new Set(drop.map(([id]) => id));
    for (const name of names) {
      const id = /^(.+)\.log(?:\.\d+)?$/.exec(name)?.[1];
      if (id && ids.has(id)) rmSync(join(dir, name), { force: true });
    }
  }

  /** Writes every queued line of an app (or of all apps) to disk. */
  flush(app?: string): void {
    for (const w of this.writers) if (!app || w.app === app) w.flush();
  }

  /** @internal */
  emit(app: string, line: LogLine): void {
    const set = this.listeners.get(app);
    if (!set) return;
    for (const fn of set) {
      try {
        fn(line);
      } catch {
        // a broken follower must not affect capture
      }
    }
  }

  /**
   * The last `tail` lines of an app across all its instances (current and previous), oldest first.
   * @param filter.process only lines of this process type
   * @param filter.since only lines at or after this ISO time
   */
  async tail(app: string, filter: { tail: number; process?: string; since?: string }): Promise<LogLine[]> {
    this.flush(app);
    const dir = join(this.options.dir, app);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    const byInstance = new Map<string, string[]>();
    for (const name of names) {
      const m = /^(.+)\.log(?:\.(\d+))?$/.exec(name);
      if (!m) continue;
      const id = m[1] as string;
      const list = byInstance.get(id) ?? [];
      list.push(name);
      byInstance.set(id, list);
    }
    const want = Math.max(0, filter.tail);
    const all: LogLine[] = [];
    for (const files of byInstance.values()) {
      // newest file first: x.log, x.log.1, x.log.2, …
      files.sort((a, b) => rotationIndex(a) - rotationIndex(b));
      const collected: LogLine[] = [];
      for (const f of files) {
        if (collected.length >= want) break;
        const lines = readLastLines(join(dir, f), want - collected.length, (l) => accept(l, filter));
        collected.unshift(...lines);
      }
      all.push(...collected);
    }
    all.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    return want === 0 ? [] : all.slice(-want);
  }
}

function rotationIndex(name: string): number {
  const m = /\.log\.(\d+)$/.exec(name);
  return m ? Number(m[1]) : 0;
}

function accept(l: LogLine, filter: { process?: string; since?: string }): boolean {
  if (filter.process && l.processType !== filter.process) return false;
  if (filter.since && l.ts < filter.since) return false;
  return true;
}

function parseLine(text: string): LogLine | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as LogLine;
    return typeof v.ts === 'string' && typeof v.line === 'string' ? v : null;
  } catch {
    return null;
  }
}

/** Reads a JSON-lines file backwards and returns up to `n` accepted entries, oldest first. */
export function readLastLines(file: string, n: number, ok: (l: LogLine) => boolean = () => true): LogLine[] {
  if (n <= 0) return [];
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const out: LogLine[] = [];
    let pos = size;
    let rest = Buffer.alloc(0);
    const step = 64 * 1024;
    while (pos > 0 && out.length < n) {
      const len = Math.min(step, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, pos);
      let data = Buffer.concat([buf, rest]);
      // everything before the first newline may be a partial line (unless we are at the file start)
      const cut = pos > 0 ? data.indexOf(10) : -1;
      if (pos > 0 && cut === -1) {
        rest = data;
        continue;
      }
      rest = cut >= 0 ? data.subarray(0, cut) : Buffer.alloc(0);
      data = cut >= 0 ? data.subarray(cut + 1) : data;
      const lines = data.toString('utf8').split('\n');
      for (let i = lines.length - 1; i >= 0 && out.length < n; i--) {
        const l = parseLine(lines[i] as string);
        if (l && ok(l)) out.push(l);
      }
    }
    if (pos === 0 && rest.length > 0 && out.length < n) {
      const l = parseLine(rest.toString('utf8'));
      if (l && ok(l)) out.push(l);
    }
    return out.reverse();
  } finally {
    closeSync(fd);
  }
}
