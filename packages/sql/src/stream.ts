import { MinipaasSqlError } from './errors.ts';
import type { SqlExecutor, Unlisten } from './executor.ts';
import { call, ms, num, sleep, type Target, toDate } from './internal.ts';
import { assertName, MAX_BATCH, MAX_WRITE_BATCH } from './names.ts';

/** An event of a stream. Ids increase in commit order (see docs/sql.md, "no skipped events"). */
export interface StreamEvent<T> {
  id: number;
  payload: T;
  publishedAt: Date;
}

/** Options for {@link Stream.create}. */
export interface StreamOptions {
  /** Age after which `trim()` (without bounds) deletes events, in ms. Default: keep forever. */
  retentionMs?: number;
}

/** A named consumer's stored position. */
export interface StreamConsumer {
  consumer: string;
  /** The last processed event id (0: none yet). */
  lastId: number;
  /** Events after `lastId`. */
  lag: number;
  updatedAt: Date;
}

export interface StreamMetrics {
  name: string;
  events: number;
  firstId: number | null;
  lastId: number | null;
  oldestPublishedAt: Date | null;
  consumers: number;
  measuredAt: Date;
}

/** Options for {@link Stream.subscribe}. */
export interface SubscribeOptions<T> {
  /** Events read per query (default 100, max 1000). The checkpoint is saved after each batch. */
  batchSize?: number;
  /** Poll interval when idle, in ms (default 1000). LISTEN/NOTIFY wakes the subscription sooner. */
  pollIntervalMs?: number;
  /** First delay before retrying an event whose handler failed, in ms; doubles up to 30 s (default 500). */
  retryDelayMs?: number;
  /** Called with handler failures (with the event) and database errors. Default: console.error. */
  onError?: (err: unknown, event?: StreamEvent<T>) => void;
  /** Stops the subscription gracefully when aborted. */
  signal?: AbortSignal;
}

/** A running subscription. */
export interface Subscription {
  /** Finishes the current event, saves the checkpoint, and resolves. */
  stop(): Promise<void>;
  readonly done: Promise<void>;
  /** The last processed event id. */
  readonly position: number;
}

interface RawEvent {
  id: unknown;
  payload: unknown;
  published_at: unknown;
}

function toEvent<T>(r: RawEvent): StreamEvent<T> {
  return { id: num(r.id), payload: r.payload as T, publishedAt: toDate(r.published_at) };
}

/**
 * An append-only stream. Any number of named consumers read it independently; each keeps a
 * checkpoint in the database. Delivery to a subscriber is at-least-once and in id order.
 */
export class Stream<T = unknown> {
  readonly name: string;
  readonly #db: SqlExecutor;
  readonly #target: Target;

  constructor(db: SqlExecutor, name: string) {
    assertName('stream', 'Stream', name);
    this.#db = db;
    this.name = name;
    this.#target = { kind: 'stream', name };
  }

  /** The same stream through another executor, e.g. a transaction's client. */
  using(db: SqlExecutor): Stream<T> {
    return new Stream<T>(db, this.name);
  }

  #call<R>(fn: string, text: string, params: readonly unknown[]): Promise<R[]> {
    return call<R>(this.#db, this.#target, fn, text, params);
  }

  #error(fn: string, message: string): MinipaasSqlError {
    return new MinipaasSqlError(message, { sqlFunction: fn, stream: this.name, code: '22023' });
  }

  #json(fn: string, payload: unknown): string {
    const text = payload === undefined ? undefined : JSON.stringify(payload);
    if (text === undefined) throw this.#error(fn, 'payload must be JSON-serialisable (not undefined)');
    return text;
  }

  #consumer(fn: string, consumer: string) {
    if (typeof consumer !== 'string' || consumer.length < 1 || consumer.length > 200) {
      throw this.#error(fn, 'consumer must be a string of 1 to 200 characters');
    }
  }

  /** Creates the stream if it does not exist. */
  async create(options: StreamOptions = {}): Promise<void> {
    const fn = 'minipaas_stream_create';
    await this.#call(fn, 'SELECT minipaas_stream_create($1, $2::interval)', [
      this.name,
      ms(options.retentionMs, 'retentionMs', fn, this.#target),
    ]);
  }

  /** Appends one event and notifies listeners. */
  async publish(payload: T): Promise<StreamEvent<T>> {
    const fn = 'minipaas_stream_publish';
    const rows = await this.#call<RawEvent>(fn, 'SELECT * FROM minipaas_stream_publish($1, $2::jsonb)', [
      this.name,
      this.#json(fn, payload),
    ]);
    return toEvent<T>(rows[0]!);
  }

  /** Appends up to 10,000 events atomically, in order. */
  async publishBatch(payloads: readonly T[]): Promise<StreamEvent<T>[]> {
    const fn = 'minipaas_stream_publish_batch';
    if (payloads.length === 0) return [];
    if (payloads.length > MAX_WRITE_BATCH) {
      throw this.#error(fn, `at most ${MAX_WRITE_BATCH} payloads per batch, got ${payloads.length}`);
    }
    const json = `[${payloads.map((p) => this.#json(fn, p)).join(',')}]`;
    const rows = await this.#call<RawEvent>(
      fn,
      `SELECT * FROM minipaas_stream_publish_batch($1,
         ARRAY(SELECT e FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n))`,
      [this.name, json],
    );
    return rows.map((r) => toEvent<T>(r));
  }

  /** Up to `batchSize` (1..1000) events with id greater than `afterId`, in order. */
  async consume(afterId = 0, batchSize = 100): Promise<StreamEvent<T>[]> {
    const fn = 'minipaas_stream_consume';
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) {
      throw this.#error(fn, `batch size must be an integer between 1 and ${MAX_BATCH}, got ${batchSize}`);
    }
    const rows = await this.#call<RawEvent>(
      fn,
      'SELECT * FROM minipaas_stream_consume($1, $2::bigint, $3::int)',
      [this.name, afterId, batchSize],
    );
    return rows.map((r) => toEvent<T>(r));
  }

  /** A named consumer's position: the last event id it processed (0: none). */
  async position(consumer: string): Promise<number> {
    const fn = 'minipaas_stream_position';
    this.#consumer(fn, consumer);
    const rows = await this.#call<{ n: unknown }>(fn, 'SELECT minipaas_stream_position($1, $2) AS n', [
      this.name,
      consumer,
    ]);
    return num(rows[0]?.n ?? 0);
  }

  /** Saves a consumer's position; never moves it backwards. Returns the stored position. */
  async checkpoint(consumer: string, lastId: number): Promise<number> {
    const fn = 'minipaas_stream_checkpoint';
    this.#consumer(fn, consumer);
    const rows = await this.#call<{ n: unknown }>(
      fn,
      'SELECT minipaas_stream_checkpoint($1, $2, $3::bigint) AS n',
      [this.name, consumer, lastId],
    );
    return num(rows[0]?.n ?? 0);
  }

  /** Sets a consumer's position to any id (rewind or skip). */
  async seek(consumer: string, lastId: number): Promise<number> {
    const fn = 'minipaas_stream_seek';
    this.#consumer(fn, consumer);
    const rows = await this.#call<{ n: unknown }>(
      fn,
      'SELECT minipaas_stream_seek($1, $2, $3::bigint) AS n',
      [this.name, consumer, lastId],
    );
    return num(rows[0]?.n ?? 0);
  }

  async consumers(): Promise<StreamConsumer[]> {
    const rows = await this.#call<Record<string, unknown>>(
      'minipaas_stream_consumers',
      'SELECT * FROM minipaas_stream_consumers($1)',
      [this.name],
    );
    return rows.map((r) => ({
      consumer: String(r.consumer),
      lastId: num(r.last_id),
      lag: num(r.lag),
      updatedAt: toDate(r.updated_at),
    }));
  }

  async metrics(): Promise<StreamMetrics> {
    const rows = await this.#call<Record<string, unknown>>(
      'minipaas_stream_metrics',
      'SELECT * FROM minipaas_stream_metrics($1)',
      [this.name],
    );
    const r = rows[0]!;
    return {
      name: String(r.name),
      events: num(r.events),
      firstId: r.first_id === null ? null : num(r.first_id),
      lastId: r.last_id === null ? null : num(r.last_id),
      oldestPublishedAt: r.oldest_published_at === null ? null : toDate(r.oldest_published_at),
      consumers: num(r.consumers),
      measuredAt: toDate(r.measured_at),
    };
  }

  /**
   * Deletes events with id below `beforeId` and/or older than `olderThanMs`; without bounds applies
   * the stream's retention. Returns how many were deleted.
   */
  async trim(options: { beforeId?: number; olderThanMs?: number } = {}): Promise<number> {
    const fn = 'minipaas_stream_trim';
    const rows = await this.#call<{ n: unknown }>(
      fn,
      'SELECT minipaas_stream_trim($1, $2::bigint, $3::interval) AS n',
      [this.name, options.beforeId ?? null, ms(options.olderThanMs, 'olderThanMs', fn, this.#target)],
    );
    return num(rows[0]?.n ?? 0);
  }

  /** Drops the stream and its checkpoints. Returns false when it did not exist. */
  async drop(): Promise<boolean> {
    const rows = await this.#call<{ dropped: boolean }>(
      'minipaas_stream_drop',
      'SELECT minipaas_stream_drop($1) AS dropped',
      [this.name],
    );
    return rows[0]?.dropped === true;
  }

  /**
   * Feeds events to `handler` in id order, starting after the consumer's checkpoint, saving the
   * checkpoint after every batch. A failing handler is retried (with backoff) on the same event, so
   * order is kept; events are never skipped. Run one subscription per consumer name.
   */
  subscribe(
    consumer: string,
    handler: (event: StreamEvent<T>) => unknown,
    options: SubscribeOptions<T> = {},
  ): Subscription {
    this.#consumer('minipaas_stream_checkpoint', consumer);
    return new StreamSubscription<T>(this, this.#db, consumer, handler, options);
  }
}

class StreamSubscription<T> implements Subscription {
  readonly done: Promise<void>;
  #position = 0;
  readonly #stream: Stream<T>;
  readonly #db: SqlExecutor;
  readonly #consumer: string;
  readonly #handler: (event: StreamEvent<T>) => unknown;
  readonly #options: SubscribeOptions<T>;
  readonly #stop = new AbortController();
  #notified = false;
  #wake: (() => void) | null = null;

  constructor(
    stream: Stream<T>,
    db: SqlExecutor,
    consumer: string,
    handler: (event: StreamEvent<T>) => unknown,
    options: SubscribeOptions<T>,
  ) {
    this.#stream = stream;
    this.#db = db;
    this.#consumer = consumer;
    this.#handler = handler;
    this.#options = options;
    if (options.signal) {
      if (options.signal.aborted) this.#requestStop();
      else options.signal.addEventListener('abort', () => this.#requestStop(), { once: true });
    }
    this.done = this.#run();
  }

  get position(): number {
    return this.#position;
  }

  stop(): Promise<void> {
    this.#requestStop();
    return this.done;
  }

  #requestStop() {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    this.#wake?.();
  }

  #report(err: unknown, event?: StreamEvent<T>) {
    try {
      if (this.#options.onError) this.#options.onError(err, event);
      else
        console.error(
          `@minipaas/sql subscription "${this.#consumer}" on stream "${this.#stream.name}":`,
          err,
        );
    } catch {
      // ignore
    }
  }

  #waitForEvents(ms: number): Promise<void> {
    if (this.#notified || this.#stop.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.#wake = null;
        resolve();
      }
      this.#wake = done;
    });
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    const batchSize = Math.max(1, Math.min(this.#options.batchSize ?? 100, MAX_BATCH));
    const pollMs = this.#options.pollIntervalMs ?? 1000;
    const firstRetry = this.#options.retryDelayMs ?? 500;
    let unlisten: Unlisten | null = null;
    if (this.#db.listen) {
      try {
        unlisten = await this.#db.listen(this.#stream.name, () => {
          this.#notified = true;
          this.#wake?.();
        });
      } catch (err) {
        this.#report(err);
      }
    }
    let saved = -1;
    let errorDelay = 0;
    const save = async () => {
      if (this.#position === saved) return;
      await this.#stream.checkpoint(this.#consumer, this.#position);
      saved = this.#position;
    };
    try {
      // initial position (retry until the database answers or we are stopped)
      while (!stop.aborted && saved < 0) {
        try {
          this.#position = await this.#stream.position(this.#consumer);
          saved = this.#position;
        } catch (err) {
          this.#report(err);
          errorDelay = Math.min(Math.max(errorDelay * 2, 100), 30_000);
          await sleep(errorDelay, stop);
        }
      }
      while (!stop.aborted) {
        this.#notified = false;
        let events: StreamEvent<T>[];
        try {
          events = await this.#stream.consume(this.#position, batchSize);
          errorDelay = 0;
        } catch (err) {
          this.#report(err);
          errorDelay = Math.min(Math.max(errorDelay * 2, 100), 30_000);
          await sleep(errorDelay, stop);
          continue;
        }
        for (const e of events) {
          let retry = firstRetry;
          for (;;) {
            try {
              await this.#handler(e);
              this.#position = e.id;
              break;
            } catch (err) {
              this.#report(err, e);
              if (stop.aborted) break;
              await save().catch((x: unknown) => this.#report(x));
              await sleep(retry, stop);
              retry = Math.min(retry * 2, 30_000);
              if (stop.aborted) break;
            }
          }
          if (stop.aborted) break;
        }
        await save().catch((err: unknown) => this.#report(err));
        if (events.length < batchSize) await this.#waitForEvents(pollMs);
      }
    } finally {
      if (saved >= 0) await save().catch((err: unknown) => this.#report(err));
      if (unlisten) await unlisten().catch((err: unknown) => this.#report(err));
    }
  }
}
