import { MinipaasSqlError } from './errors.ts';
import type { SqlExecutor, Unlisten } from './executor.ts';
import { call, ms, num, sleep, type Target, toDate } from './internal.ts';
import { assertName, MAX_BATCH, MAX_WRITE_BATCH } from './names.ts';

/** Settings of a queue, stored in the database (`minipaas.queues`). */
export interface QueueOptions {
  /** How long a dequeued message stays invisible before it is redelivered, in ms (default 30 s). */
  visibilityTimeoutMs?: number;
  /** Deliveries before a failing message goes to the dead-letter table (default 5, max 1000). */
  maxAttempts?: number;
  /** First retry delay after a nack, in ms; doubles per attempt (default 1 s). */
  backoffBaseMs?: number;
  /** Upper bound of the retry delay, in ms (default 1 h). */
  backoffMaxMs?: number;
}

/** A message as returned by enqueue and dequeue (enqueue returns the payload you passed). */
export interface QueueMessage<T> {
  id: number;
  payload: T;
  enqueuedAt: Date;
  /** When the message becomes (or became) visible; for a dequeued message, when its lease ends. */
  visibleAt: Date;
  /** How many times the message has been delivered (1 on the first delivery). */
  readCount: number;
}

/** A message in the dead-letter table. */
export interface DeadMessage<T> {
  id: number;
  payload: T;
  enqueuedAt: Date;
  failedAt: Date;
  readCount: number;
  lastError: string | null;
}

export interface QueueMetrics {
  name: string;
  /** All messages in the queue table (ready, delayed and in flight). */
  depth: number;
  ready: number;
  inFlight: number;
  /** Scheduled for later: delayed enqueues and retries waiting out their backoff. */
  delayed: number;
  dead: number;
  /** Age of the oldest message in the queue, in ms (null when empty). */
  oldestAgeMs: number | null;
  measuredAt: Date;
}

/** Options for {@link Queue.enqueue} and {@link Queue.enqueueBatch}. */
export interface EnqueueOptions {
  /** Make the message visible only after this many ms. */
  delayMs?: number;
}

/** Options for {@link Queue.dequeue}. */
export interface DequeueOptions {
  /** Lease length for this claim, in ms (default: the queue's visibility timeout). */
  visibilityTimeoutMs?: number;
}

/** Options for {@link Queue.nack}. */
export interface NackOptions {
  /** Stored as the message's last error (and in the dead-letter table). */
  error?: string;
  /** Retry after exactly this many ms instead of the queue's exponential backoff. */
  delayMs?: number;
}

/** Options for {@link Queue.work}. */
export interface WorkOptions<T> {
  /** Messages handled at the same time (default 1). */
  concurrency?: number;
  /** Most messages claimed per dequeue (default: `concurrency`, max 1000). Never more than free slots. */
  batchSize?: number;
  /** Poll interval when idle, in ms (default 1000). LISTEN/NOTIFY wakes the worker sooner. */
  pollIntervalMs?: number;
  /** Lease length per claim, in ms (default: the queue's visibility timeout). */
  visibilityTimeoutMs?: number;
  /**
   * Extend the lease of in-flight messages every this many ms (a heartbeat for long handlers).
   * Needs `visibilityTimeoutMs`; use a value well below it. Off by default.
   */
  heartbeatMs?: number;
  /** Retry delay for failed messages, in ms (default: the queue's exponential backoff). */
  retryDelayMs?: number;
  /** Called with handler failures (with the message) and database errors (without). Default: console.error. */
  onError?: (err: unknown, message?: QueueMessage<T>) => void;
  /** Stops the worker gracefully when aborted. */
  signal?: AbortSignal;
}

/** A running worker. */
export interface QueueWorker {
  /** Stops claiming messages, waits for in-flight handlers and their acks, then resolves. */
  stop(): Promise<void>;
  /** Resolves when the worker has stopped. */
  readonly done: Promise<void>;
  /** Messages handled successfully / failed so far. */
  readonly stats: { processed: number; failed: number };
}

interface RawMessage {
  id: unknown;
  payload: unknown;
  enqueued_at: unknown;
  visible_at: unknown;
  read_count: unknown;
}

function toMessage<T>(r: RawMessage): QueueMessage<T> {
  return {
    id: num(r.id),
    payload: r.payload as T,
    enqueuedAt: toDate(r.enqueued_at),
    visibleAt: toDate(r.visible_at),
    readCount: num(r.read_count),
  };
}

function toJson(payload: unknown, sqlFunction: string, target: Target): string {
  const text = payload === undefined ? undefined : JSON.stringify(payload);
  if (text === undefined) {
    throw new MinipaasSqlError('payload must be JSON-serialisable (not undefined)', {
      sqlFunction,
      queue: target.kind === 'queue' ? target.name : undefined,
      stream: target.kind === 'stream' ? target.name : undefined,
      code: '22023',
    });
  }
  return text;
}

function idList(ids: number | readonly number[]): number[] {
  return typeof ids === 'number' ? [ids] : [...ids];
}

/**
 * A durable queue. Messages are JSON (`T` is the payload type); delivery is at-least-once: a message
 * whose lease expires before it is acked is delivered again, so handlers must be idempotent.
 */
export class Queue<T = unknown> {
  readonly name: string;
  readonly #db: SqlExecutor;
  readonly #target: Target;

  constructor(db: SqlExecutor, name: string) {
    assertName('queue', 'Queue', name);
    this.#db = db;
    this.name = name;
    this.#target = { kind: 'queue', name };
  }

  /** The same queue through another executor, e.g. a transaction's client. */
  using(db: SqlExecutor): Queue<T> {
    return new Queue<T>(db, this.name);
  }

  async #call<R>(fn: string, text: string, params: readonly unknown[]): Promise<R[]> {
    try {
      return await call<R>(this.#db, this.#target, fn, text, params);
    } catch (err) {
      // the queue's entry point is missing: the queue does not exist
      if (
        err instanceof MinipaasSqlError &&
        err.code === '42883' &&
        err.message.includes(`f_${this.name}_`)
      ) {
        throw new MinipaasSqlError(`${fn}: queue "${this.name}" does not exist`, {
          sqlFunction: fn,
          queue: this.name,
          code: '42704',
          cause: err,
        });
      }
      throw err;
    }
  }

  /** The queue's generated entry point (see minipaas.queue_install in the migration). */
  #entry(op: 'enq' | 'enb' | 'deq' | 'ack' | 'nak' | 'swp'): string {
    return `minipaas."f_${this.name}_${op}"`;
  }

  #ms(value: number | undefined, what: string, fn: string): string | null {
    return ms(value, what, fn, this.#target);
  }

  /** Creates the queue if it does not exist (options apply only when it is created). */
  async create(options: QueueOptions = {}): Promise<void> {
    const fn = 'minipaas_queue_create';
    await this.#call(
      fn,
      'SELECT minipaas_queue_create($1, $2::interval, $3::int, $4::interval, $5::interval)',
      [
        this.name,
        this.#ms(options.visibilityTimeoutMs, 'visibilityTimeoutMs', fn),
        options.maxAttempts ?? null,
        this.#ms(options.backoffBaseMs, 'backoffBaseMs', fn),
        this.#ms(options.backoffMaxMs, 'backoffMaxMs', fn),
      ],
    );
  }

  /** Changes settings of an existing queue; omitted settings stay as they are. */
  async configure(options: QueueOptions): Promise<void> {
    const fn = 'minipaas_queue_configure';
    await this.#call(
      fn,
      'SELECT minipaas_queue_configure($1, $2::interval, $3::int, $4::interval, $5::interval)',
      [
        this.name,
        this.#ms(options.visibilityTimeoutMs, 'visibilityTimeoutMs', fn),
        options.maxAttempts ?? null,
        this.#ms(options.backoffBaseMs, 'backoffBaseMs', fn),
        this.#ms(options.backoffMaxMs, 'backoffMaxMs', fn),
      ],
    );
  }

  /** Appends one message and notifies listeners. */
  async enqueue(payload: T, options: EnqueueOptions = {}): Promise<QueueMessage<T>> {
    const fn = 'minipaas_queue_enqueue';
    // the payload is not echoed back: the client already has it (saves parsing it again)
    const rows = await this.#call<RawMessage>(
      fn,
      `SELECT id, enqueued_at, visible_at FROM ${this.#entry('enq')}($1::jsonb, $2::interval)`,
      [toJson(payload, fn, this.#target), this.#ms(options.delayMs, 'delayMs', fn)],
    );
    return toMessage<T>({ ...rows[0]!, payload, read_count: 0 });
  }

  /** Appends up to 10,000 messages in one statement (atomically, in order); one notification. */
  async enqueueBatch(payloads: readonly T[], options: EnqueueOptions = {}): Promise<QueueMessage<T>[]> {
    const fn = 'minipaas_queue_enqueue_batch';
    if (payloads.length === 0) return [];
    if (payloads.length > MAX_WRITE_BATCH) {
      throw new MinipaasSqlError(`at most ${MAX_WRITE_BATCH} payloads per batch, got ${payloads.length}`, {
        sqlFunction: fn,
        queue: this.name,
        code: '22023',
      });
    }
    const json = `[${payloads.map((p) => toJson(p, fn, this.#target)).join(',')}]`;
    // one row back: the new ids in order (identity values are drawn in array order) and the shared
    // timestamps; the payloads are the caller's own
    const rows = await this.#call<{ ids: unknown[]; enqueued_at: unknown; visible_at: unknown }>(
      fn,
      `SELECT array_agg(m.id ORDER BY m.id) AS ids, min(m.enqueued_at) AS enqueued_at, min(m.visible_at) AS visible_at
       FROM ${this.#entry('enb')}(
         ARRAY(SELECT e FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n),
         $2::interval) m`,
      [json, this.#ms(options.delayMs, 'delayMs', fn)],
    );
    const r = rows[0]!;
    const enqueuedAt = toDate(r.enqueued_at);
    const visibleAt = toDate(r.visible_at);
    return r.ids.map((id, i) => ({
      id: num(id),
      payload: payloads[i]!,
      enqueuedAt,
      visibleAt,
      readCount: 0,
    }));
  }

  /** Claims up to `batchSize` (1..1000) ready messages; concurrent callers never get the same one. */
  async dequeue(batchSize = 1, options: DequeueOptions = {}): Promise<QueueMessage<T>[]> {
    const fn = 'minipaas_queue_dequeue';
    this.#checkBatch(batchSize, fn);
    const rows = await this.#call<RawMessage>(
      fn,
      `SELECT * FROM ${this.#entry('deq')}($1::int, $2::interval)`,
      [batchSize, this.#ms(options.visibilityTimeoutMs, 'visibilityTimeoutMs', fn)],
    );
    return rows.map((r) => toMessage<T>(r));
  }

  #checkBatch(batchSize: number, fn: string): void {
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) {
      throw new MinipaasSqlError(
        `batch size must be an integer between 1 and ${MAX_BATCH}, got ${batchSize}`,
        {
          sqlFunction: fn,
          queue: this.name,
          code: '22023',
        },
      );
    }
  }

  /**
   * Completes `ackIds` and claims up to `batchSize` messages in one round trip (the ack runs first, in the
   * same statement). This is what `work()` uses to carry finished messages' acks on its next claim.
   */
  async ackAndDequeue(
    ackIds: readonly number[],
    batchSize = 1,
    options: DequeueOptions = {},
  ): Promise<QueueMessage<T>[]> {
    const list = idList(ackIds);
    if (list.length === 0) return this.dequeue(batchSize, options);
    const fn = 'minipaas_queue_dequeue';
    this.#checkBatch(batchSize, fn);
    // The dequeue's argument depends on the ack's result, so the ack is evaluated first; both functions are
    // volatile, so the claim sees the deletions.
    const rows = await this.#call<RawMessage>(
      fn,
      `SELECT d.* FROM (SELECT ${this.#entry('ack')}($1::bigint[]) AS n) a,
         LATERAL ${this.#entry('deq')}(CASE WHEN a.n >= 0 THEN $2::int ELSE $2::int END, $3::interval) d`,
      [list, batchSize, this.#ms(options.visibilityTimeoutMs, 'visibilityTimeoutMs', fn)],
    );
    return rows.map((r) => toMessage<T>(r));
  }

  /** Completes (deletes) messages. Returns how many were still there to delete. */
  async ack(ids: number | readonly number[]): Promise<number> {
    const list = idList(ids);
    if (list.length === 0) return 0;
    const rows = await this.#call<{ n: unknown }>(
      'minipaas_queue_ack',
      `SELECT ${this.#entry('ack')}($1::bigint[]) AS n`,
      [list],
    );
    return num(rows[0]?.n ?? 0);
  }

  /**
   * Fails messages: each is retried after the queue's exponential backoff (or `delayMs`), or moved to
   * the dead-letter table when it has used all its attempts.
   */
  async nack(
    ids: number | readonly number[],
    options: NackOptions = {},
  ): Promise<{ retried: number; dead: number }> {
    const fn = 'minipaas_queue_nack';
    const list = idList(ids);
    if (list.length === 0) return { retried: 0, dead: 0 };
    const rows = await this.#call<{ retried: unknown; dead: unknown }>(
      fn,
      `SELECT * FROM ${this.#entry('nak')}($1::bigint[], $2::text, $3::interval)`,
      [list, options.error ?? null, this.#ms(options.delayMs, 'delayMs', fn)],
    );
    return { retried: num(rows[0]?.retried ?? 0), dead: num(rows[0]?.dead ?? 0) };
  }

  /** Extends the lease of in-flight messages to `visibilityTimeoutMs` from now. Returns how many. */
  async extend(ids: number | readonly number[], visibilityTimeoutMs: number): Promise<number> {
    const fn = 'minipaas_queue_extend';
    const list = idList(ids);
    const vt = this.#ms(visibilityTimeoutMs, 'visibilityTimeoutMs', fn);
    if (list.length === 0) return 0;
    const rows = await this.#call<{ n: unknown }>(
      fn,
      'SELECT minipaas_queue_extend($1, $2::bigint[], $3::interval) AS n',
      [this.name, list, vt],
    );
    return num(rows[0]?.n ?? 0);
  }

  /** Dead-letters messages whose final attempt's lease expired. Returns how many moved. */
  async sweep(): Promise<number> {
    const rows = await this.#call<{ n: unknown }>(
      'minipaas_queue_sweep',
      `SELECT ${this.#entry('swp')}() AS n`,
      [],
    );
    return num(rows[0]?.n ?? 0);
  }

  /** Lists dead-lettered messages by id, after `afterId` (paging). */
  async dead(options: { limit?: number; afterId?: number } = {}): Promise<DeadMessage<T>[]> {
    const rows = await this.#call<{
      id: unknown;
      payload: unknown;
      enqueued_at: unknown;
      failed_at: unknown;
      read_count: unknown;
      last_error: string | null;
    }>('minipaas_queue_dead', 'SELECT * FROM minipaas_queue_dead($1, $2::int, $3::bigint)', [
      this.name,
      options.limit ?? 100,
      options.afterId ?? 0,
    ]);
    return rows.map((r) => ({
      id: num(r.id),
      payload: r.payload as T,
      enqueuedAt: toDate(r.enqueued_at),
      failedAt: toDate(r.failed_at),
      readCount: num(r.read_count),
      lastError: r.last_error,
    }));
  }

  /** Moves dead-lettered messages (all, or the given ids) back into the queue. Returns how many. */
  async redrive(ids?: readonly number[]): Promise<number> {
    const rows = await this.#call<{ n: unknown }>(
      'minipaas_queue_redrive',
      'SELECT minipaas_queue_redrive($1, $2::bigint[]) AS n',
      [this.name, ids ? [...ids] : null],
    );
    return num(rows[0]?.n ?? 0);
  }

  async metrics(): Promise<QueueMetrics> {
    const rows = await this.#call<Record<string, unknown>>(
      'minipaas_queue_metrics',
      `SELECT m.*, (extract(epoch FROM m.oldest_age) * 1000)::float8 AS oldest_age_ms
       FROM minipaas_queue_metrics($1) m`,
      [this.name],
    );
    const r = rows[0]!;
    return {
      name: String(r.name),
      depth: num(r.depth),
      ready: num(r.ready),
      inFlight: num(r.in_flight),
      delayed: num(r.delayed),
      dead: num(r.dead),
      oldestAgeMs: r.oldest_age_ms === null ? null : num(r.oldest_age_ms),
      measuredAt: toDate(r.measured_at),
    };
  }

  /** Deletes every message (and the dead letters with `includeDead`). Returns rows deleted. */
  async purge(options: { includeDead?: boolean } = {}): Promise<number> {
    const rows = await this.#call<{ n: unknown }>(
      'minipaas_queue_purge',
      'SELECT minipaas_queue_purge($1, $2) AS n',
      [this.name, options.includeDead ?? false],
    );
    return num(rows[0]?.n ?? 0);
  }

  /** Drops the queue with all its messages. Returns false when it did not exist. */
  async drop(): Promise<boolean> {
    const rows = await this.#call<{ dropped: boolean }>(
      'minipaas_queue_drop',
      'SELECT minipaas_queue_drop($1) AS dropped',
      [this.name],
    );
    return rows[0]?.dropped === true;
  }

  /**
   * Processes messages with `handler` until stopped: wakes on LISTEN/NOTIFY (polling as a fallback),
   * acks on success (acks are batched), nacks with backoff on failure. `stop()` finishes in-flight work.
   */
  work(handler: (message: QueueMessage<T>) => unknown, options: WorkOptions<T> = {}): QueueWorker {
    return new Worker<T>(this, this.#db, handler, options);
  }
}

class Worker<T> implements QueueWorker {
  readonly stats = { processed: 0, failed: 0 };
  readonly done: Promise<void>;
  readonly #queue: Queue<T>;
  readonly #db: SqlExecutor;
  readonly #handler: (message: QueueMessage<T>) => unknown;
  readonly #concurrency: number;
  readonly #batchSize: number;
  readonly #pollMs: number;
  readonly #options: WorkOptions<T>;
  /** in-flight handlers by a per-dispatch key (the same id can be redelivered while still running) */
  readonly #inFlight = new Map<number, { id: number; done: Promise<void> }>();
  #nextKey = 0;
  readonly #pendingWrites = new Set<Promise<unknown>>();
  readonly #stop = new AbortController();
  #acks: number[] = [];
  #ackScheduled = false;
  #notified = false;
  #wakeWork: (() => void) | null = null;
  #wakeSlot: (() => void) | null = null;

  constructor(
    queue: Queue<T>,
    db: SqlExecutor,
    handler: (message: QueueMessage<T>) => unknown,
    options: WorkOptions<T>,
  ) {
    this.#queue = queue;
    this.#db = db;
    this.#handler = handler;
    this.#options = options;
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new MinipaasSqlError(`concurrency must be a positive integer, got ${concurrency}`, {
        sqlFunction: 'minipaas_queue_dequeue',
        queue: queue.name,
        code: '22023',
      });
    }
    this.#concurrency = concurrency;
    this.#batchSize = Math.max(1, Math.min(options.batchSize ?? concurrency, MAX_BATCH));
    this.#pollMs = options.pollIntervalMs ?? 1000;
    if (options.signal) {
      if (options.signal.aborted) this.#requestStop();
      else options.signal.addEventListener('abort', () => this.#requestStop(), { once: true });
    }
    this.done = this.#run();
  }

  stop(): Promise<void> {
    this.#requestStop();
    return this.done;
  }

  #requestStop() {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    this.#wakeWork?.();
    this.#wakeSlot?.();
  }

  #report(err: unknown, message?: QueueMessage<T>) {
    try {
      if (this.#options.onError) this.#options.onError(err, message);
      else console.error(`@minipaas/sql worker for queue "${this.#queue.name}":`, err);
    } catch {
      // an onError that throws must not kill the worker
    }
  }

  #onNotify = () => {
    this.#notified = true;
    this.#wakeWork?.();
  };

  /** Waits for a notification, stop, or the poll interval. */
  #waitForWork(ms: number): Promise<void> {
    if (this.#notified || this.#stop.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.#wakeWork = null;
        resolve();
      }
      this.#wakeWork = done;
    });
  }

  /** Waits until a handler finishes (or stop). */
  #waitForSlot(): Promise<void> {
    if (this.#inFlight.size < this.#concurrency || this.#stop.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wakeSlot = () => {
        this.#wakeSlot = null;
        // let handlers that finish in the same tick free their slots too, so the next claim is a batch
        setImmediate(resolve);
      };
    });
  }

  async #run(): Promise<void> {
    const stopSignal = this.#stop.signal;
    let unlisten: Unlisten | null = null;
    let heartbeat: NodeJS.Timeout | null = null;
    if (this.#db.listen) {
      try {
        unlisten = await this.#db.listen(this.#queue.name, this.#onNotify);
      } catch (err) {
        this.#report(err);
      }
    }
    const { heartbeatMs, visibilityTimeoutMs } = this.#options;
    if (heartbeatMs && visibilityTimeoutMs) {
      heartbeat = setInterval(() => {
        if (this.#inFlight.size === 0) return;
        this.#track(
          this.#queue
            .extend(
              [...this.#inFlight.values()].map((f) => f.id),
              visibilityTimeoutMs,
            )
            .catch((e) => this.#report(e)),
        );
      }, heartbeatMs);
      heartbeat.unref?.();
    }
    let errorDelay = 0;
    let lastSweep = Date.now();
    let carried: number[] = [];
    try {
      while (!stopSignal.aborted) {
        const free = this.#concurrency - this.#inFlight.size;
        if (free <= 0) {
          await this.#waitForSlot();
          continue;
        }
        this.#notified = false;
        let batch: QueueMessage<T>[];
        try {
          const opts = visibilityTimeoutMs === undefined ? {} : { visibilityTimeoutMs };
          // acks of handlers that finished while this loop waited for a slot ride along with the claim
          carried = this.#acks;
          this.#acks = [];
          batch = await this.#queue.ackAndDequeue(carried, Math.min(this.#batchSize, free), opts);
          carried = [];
          errorDelay = 0;
        } catch (err) {
          if (carried.length > 0) {
            // the acks may not have been applied: keep them (acking twice is harmless)
            this.#acks.push(...carried);
            carried = [];
            this.#flushAcks();
          }
          this.#report(err);
          errorDelay = Math.min(Math.max(errorDelay * 2, 100), 30_000);
          await sleep(errorDelay, stopSignal);
          continue;
        }
        for (const m of batch) this.#dispatch(m);
        if (batch.length === 0) {
          if (Date.now() - lastSweep > Math.max(this.#pollMs, 5000)) {
            lastSweep = Date.now();
            this.#track(this.#queue.sweep().catch((e) => this.#report(e)));
          }
          await this.#waitForWork(this.#pollMs);
        }
      }
    } finally {
      if (heartbeat) clearInterval(heartbeat);
      while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight.values()].map((f) => f.done));
      this.#flushAcks();
      while (this.#pendingWrites.size > 0) await Promise.all([...this.#pendingWrites]);
      if (unlisten) await unlisten().catch((e: unknown) => this.#report(e));
    }
  }

  #track(p: Promise<unknown>) {
    this.#pendingWrites.add(p);
    p.finally(() => this.#pendingWrites.delete(p)).catch(() => {});
  }

  #dispatch(m: QueueMessage<T>) {
    const key = this.#nextKey++;
    const retryDelayMs = this.#options.retryDelayMs;
    // registered before the handler runs: a synchronous throw reaches `finally` immediately
    const entry = { id: m.id, done: Promise.resolve() };
    this.#inFlight.set(key, entry);
    entry.done = (async () => {
      try {
        await this.#handler(m);
        this.stats.processed++;
        this.#ack(m.id);
      } catch (err) {
        this.stats.failed++;
        this.#report(err, m);
        const error = err instanceof Error ? err.message : String(err);
        const nack = this.#queue
          .nack(
            m.id,
            retryDelayMs === undefined
              ? { error: error.slice(0, 2000) }
              : { error: error.slice(0, 2000), delayMs: retryDelayMs },
          )
          .catch((e: unknown) => this.#report(e, m));
        this.#track(nack);
      } finally {
        this.#inFlight.delete(key);
        this.#wakeSlot?.();
      }
    })();
  }

  #ack(id: number) {
    this.#acks.push(id);
    // The claim loop is blocked on a free slot, which this handler is about to release: it will carry the
    // ack on its next claim (one round trip instead of two).
    if (this.#wakeSlot && !this.#stop.signal.aborted) return;
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    setImmediate(() => this.#flushAcks());
  }

  #flushAcks() {
    this.#ackScheduled = false;
    if (this.#acks.length === 0) return;
    const ids = this.#acks;
    this.#acks = [];
    this.#track(this.#queue.ack(ids).catch((e: unknown) => this.#report(e)));
  }
}
