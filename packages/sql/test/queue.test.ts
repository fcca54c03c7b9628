import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MinipaasSqlError, migrate, Queue, Stream } from '../src/index.ts';
import { type Backend, backends, delay, eventually } from './backends.ts';

const HOSTILE_NAMES: unknown[] = [
  "emails'; DROP TABLE minipaas.queues; --",
  'public.emails',
  'minipaas.queues',
  '"emails"',
  'Emails',
  '1emails',
  'emails-q',
  'emails q',
  'emails;',
  '',
  'a'.repeat(49),
  'é',
  null,
];

describe.each(backends)('queues on $name', (factory) => {
  let b: Backend;
  beforeAll(async () => {
    b = await factory.open();
  });
  afterAll(async () => {
    await b?.close();
  });

  it('runs the seed SQL examples verbatim', async () => {
    const db = b.db;
    await db.query("SELECT minipaas_queue_create('emails_q');");
    const notes: string[] = [];
    const unlisten = await db.listen!('emails_q', (p) => notes.push(p));
    const enq = await db.query<{ id: number; payload: unknown }>(
      `SELECT * FROM minipaas_queue_enqueue('emails_q', '{"email":"a@b.com"}'::jsonb);`,
    );
    expect(Number(enq.rows[0]!.id)).toBe(1);
    expect(enq.rows[0]!.payload).toEqual({ email: 'a@b.com' });
    const deq = await db.query<{ id: number; payload: unknown; read_count: number }>(
      "SELECT * FROM minipaas_queue_dequeue('emails_q', 10);",
    );
    expect(deq.rows.map((r) => Number(r.id))).toEqual([1]);
    expect(deq.rows[0]!.read_count).toBe(1);
    const ack = await db.query<{ minipaas_queue_ack: number }>(
      "SELECT minipaas_queue_ack('emails_q', ARRAY[1,2,3]);",
    );
    expect(ack.rows[0]!.minipaas_queue_ack).toBe(1);
    await db.query('LISTEN "emails_q";');
    await eventually(() => notes.length > 0, 'NOTIFY on channel emails_q');
    await unlisten();
    expect((await new Queue(db, 'emails_q').metrics()).depth).toBe(0);
  });

  it('ackAndDequeue completes the given ids before claiming, in one round trip', async () => {
    const q = new Queue<{ n: number }>(b.db, 'ad_q');
    await q.create();
    await q.enqueueBatch([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    const [first] = await q.dequeue(1);
    const next = await q.ackAndDequeue([first!.id], 2);
    expect(next.map((m) => m.payload.n)).toEqual([2, 3]);
    const m = await q.metrics();
    expect(m.depth).toBe(3); // 1 acked; 2 in flight, 1 ready
    expect(m.inFlight).toBe(2);
    const last = await q.ackAndDequeue(
      next.map((x) => x.id),
      10,
    );
    expect(last.map((x) => x.payload.n)).toEqual([4]);
    expect(await q.ackAndDequeue([last[0]!.id], 10)).toEqual([]);
    expect((await q.metrics()).depth).toBe(0);
    await expect(q.ackAndDequeue([1], 0)).rejects.toThrow(/batch size/);
  });

  it('acks what dequeue returned in one statement (array_agg example)', async () => {
    const q = new Queue<{ n: number }>(b.db, 'agg_q');
    await q.create();
    await q.enqueueBatch([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const r = await b.db.query<{ n: number }>(
      "SELECT minipaas_queue_ack('agg_q', (SELECT array_agg(id) FROM minipaas_queue_dequeue('agg_q', 10))) AS n",
    );
    expect(r.rows[0]!.n).toBe(3);
    const empty = await b.db.query<{ n: number }>(
      "SELECT minipaas_queue_ack('agg_q', (SELECT array_agg(id) FROM minipaas_queue_dequeue('agg_q', 10))) AS n",
    );
    expect(empty.rows[0]!.n).toBe(0);
  });

  it('migrations are idempotent (re-applying keeps queues and messages)', async () => {
    const q = new Queue(b.db, 'idem_q');
    await q.create();
    await q.enqueue({ keep: true });
    await migrate(b.db);
    await q.create();
    expect((await q.dequeue(5)).map((m) => m.payload)).toEqual([{ keep: true }]);
  });

  it('enqueues, dequeues and acks typed payloads in order', async () => {
    const q = new Queue<{ to: string; n: number }>(b.db, 'typed_q');
    await q.create();
    const first = await q.enqueue({ to: 'a@b.c', n: 0 });
    expect(first.readCount).toBe(0);
    expect(first.enqueuedAt).toBeInstanceOf(Date);
    const rest = await q.enqueueBatch(Array.from({ length: 9 }, (_, i) => ({ to: 'x@y.z', n: i + 1 })));
    expect(rest.map((m) => m.payload.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rest.every((m, i) => m.id > first.id && (i === 0 || m.id > rest[i - 1]!.id))).toBe(true);
    const got = await q.dequeue(4);
    expect(got.map((m) => m.payload.n)).toEqual([0, 1, 2, 3]);
    expect(got.every((m) => m.readCount === 1 && m.visibleAt > m.enqueuedAt)).toBe(true);
    const more = await q.dequeue(100);
    expect(more.map((m) => m.payload.n)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(await q.dequeue(10)).toEqual([]);
    expect(await q.ack([...got, ...more].map((m) => m.id))).toBe(10);
    expect(await q.ack(got[0]!.id)).toBe(0);
    const m = await q.metrics();
    expect(m).toMatchObject({
      name: 'typed_q',
      depth: 0,
      ready: 0,
      inFlight: 0,
      delayed: 0,
      dead: 0,
      oldestAgeMs: null,
    });
  });

  it('keeps any JSON payload', async () => {
    const q = new Queue<unknown>(b.db, 'json_q');
    await q.create();
    const values = [
      'text',
      42,
      1.5,
      true,
      null,
      [1, 'two'],
      { nested: { a: [null] } },
      "quote ' and \\ and \u00e9",
    ];
    for (const v of values) await q.enqueue(v);
    await q.enqueueBatch(values);
    const got = await q.dequeue(100);
    expect(got.map((m) => m.payload)).toEqual([...values, ...values]);
    await expect(q.enqueue(undefined)).rejects.toThrow(/payload must be JSON/);
  });

  it('bounds batch sizes on both sides', async () => {
    const q = new Queue(b.db, 'bounds_q');
    await q.create();
    for (const n of [0, -1, 1001, 1.5]) await expect(q.dequeue(n)).rejects.toBeInstanceOf(MinipaasSqlError);
    for (const n of [0, -5, 1001]) {
      await expect(
        b.db.query('SELECT * FROM minipaas_queue_dequeue($1, $2)', ['bounds_q', n]),
      ).rejects.toThrow(/minipaas_queue_dequeue: queue "bounds_q": batch size must be between 1 and 1000/);
    }
    await expect(q.enqueueBatch(new Array(10_001).fill(1))).rejects.toThrow(/at most 10000/);
    await expect(
      b.db.query('SELECT * FROM minipaas_stream_consume($1, 0, $2)', ['nope_s', 5]),
    ).rejects.toThrow(/stream "nope_s" does not exist/);
  });

  it('redelivers a message whose visibility timeout expires, counting reads', async () => {
    const q = new Queue(b.db, 'vt_q');
    await q.create({ visibilityTimeoutMs: 60_000 });
    const m = await q.enqueue({ job: 1 });
    const [first] = await q.dequeue(1, { visibilityTimeoutMs: 150 });
    expect(first!.id).toBe(m.id);
    const again = await eventually(
      async () => (await q.dequeue(1, { visibilityTimeoutMs: 60_000 }))[0],
      'redelivery',
    );
    expect(again.id).toBe(m.id);
    expect(again.readCount).toBe(2);
    expect((await q.metrics()).inFlight).toBe(1);
    expect(await q.ack(again.id)).toBe(1);
  });

  it('extends leases of in-flight messages', async () => {
    const q = new Queue(b.db, 'extend_q');
    await q.create();
    await q.enqueue('x');
    const [m] = await q.dequeue(1, { visibilityTimeoutMs: 100 });
    expect(await q.extend([m!.id], 3_600_000)).toBe(1);
    await delay(300);
    expect(await q.dequeue(1)).toEqual([]);
    expect(await q.extend([m!.id + 1000], 1000)).toBe(0);
  });

  it('delays messages until their time', async () => {
    const q = new Queue(b.db, 'delay_q');
    await q.create();
    const later = await q.enqueue('later', { delayMs: 3_600_000 });
    expect(later.visibleAt.getTime() - later.enqueuedAt.getTime()).toBeGreaterThanOrEqual(3_599_000);
    const soon = await q.enqueueBatch(['soon1', 'soon2'], { delayMs: 50 });
    const now = await q.enqueue('now');
    expect((await q.dequeue(10)).map((m) => m.id)).toEqual([now.id]);
    const delayed = await eventually(async () => {
      const got = await q.dequeue(10);
      return got.length ? got : null;
    }, 'delayed messages');
    expect(delayed.map((m) => m.id)).toEqual(soon.map((m) => m.id));
    const metrics = await q.metrics();
    expect(metrics).toMatchObject({ depth: 4, delayed: 1, inFlight: 3, ready: 0 });
    expect(metrics.oldestAgeMs).toBeGreaterThanOrEqual(0);
  });

  it('nacks with exponential backoff, dead-letters after max attempts, and re-drives', async () => {
    const q = new Queue<{ n: number }>(b.db, 'retry_q');
    await q.create({ maxAttempts: 3, backoffBaseMs: 3_600_000 });
    const m = await q.enqueue({ n: 1 });
    // attempt 1 fails: scheduled an hour out by the queue's backoff
    await q.dequeue(1);
    expect(await q.nack(m.id, { error: 'boom 1' })).toEqual({ retried: 1, dead: 0 });
    expect(await q.dequeue(1)).toEqual([]);
    expect(await q.metrics()).toMatchObject({ delayed: 1, ready: 0, inFlight: 0 });
    const backoff = await b.db.query<{ s: number }>(
      'SELECT extract(epoch FROM visible_at - now())::float8 AS s FROM minipaas.q_retry_q',
    );
    expect(backoff.rows[0]!.s).toBeGreaterThan(3500);
    // attempts 2 and 3 fail with an explicit zero delay
    await q.configure({ backoffBaseMs: 0 });
    await b.db.query("UPDATE minipaas.q_retry_q SET visible_at = now() - interval '1 second'");
    const a2 = await q.dequeue(1);
    expect(a2[0]!.readCount).toBe(2);
    expect(await q.nack(m.id, { error: 'boom 2', delayMs: 0 })).toEqual({ retried: 1, dead: 0 });
    const a3 = await q.dequeue(1);
    expect(a3[0]!.readCount).toBe(3);
    expect(await q.nack(m.id, { error: 'boom 3' })).toEqual({ retried: 0, dead: 1 });
    expect(await q.dequeue(1)).toEqual([]);
    const dead = await q.dead();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ id: m.id, payload: { n: 1 }, readCount: 3, lastError: 'boom 3' });
    expect(await q.metrics()).toMatchObject({ depth: 0, dead: 1 });
    expect(await q.redrive()).toBe(1);
    const back = await q.dequeue(1);
    expect(back[0]).toMatchObject({ id: m.id, readCount: 1, payload: { n: 1 } });
    expect(await q.ack(m.id)).toBe(1);
    expect(await q.metrics()).toMatchObject({ depth: 0, dead: 0 });
  });

  it('dead-letters a message whose final attempt timed out (crashed consumer)', async () => {
    const q = new Queue(b.db, 'final_q');
    await q.create({ maxAttempts: 1 });
    const m = await q.enqueue('crash');
    await q.dequeue(1, { visibilityTimeoutMs: 100 });
    const moved = await eventually(async () => (await q.sweep()) || (await q.dead()).length, 'sweep');
    expect(moved).toBe(1);
    const [d] = await q.dead();
    expect(d).toMatchObject({ id: m.id, readCount: 1 });
    expect(d!.lastError).toMatch(/visibility timeout expired on the final attempt/);
    // re-drive selected ids only
    await q.enqueue('other');
    expect(await q.redrive([m.id + 999])).toBe(0);
    expect(await q.redrive([m.id])).toBe(1);
  });

  it('purges, drops, lists and refuses name clashes with streams', async () => {
    const q = new Queue(b.db, 'purge_q');
    await q.create();
    await q.enqueueBatch([1, 2, 3]);
    const [m] = await q.dequeue(1);
    await q.configure({ maxAttempts: 1 });
    await q.nack(m!.id); // not dead: this message kept its max_attempts (5)
    expect(await q.purge()).toBe(3);
    const list = await b.db.query<{ name: string }>('SELECT name FROM minipaas_queue_list()');
    expect(list.rows.map((r) => r.name)).toContain('purge_q');
    await expect(new Stream(b.db, 'purge_q').create()).rejects.toMatchObject({ code: '42710' });
    expect(await q.drop()).toBe(true);
    expect(await q.drop()).toBe(false);
    const tables = await b.db.query(
      "SELECT 1 FROM pg_tables WHERE schemaname = 'minipaas' AND tablename LIKE '%purge_q'",
    );
    expect(tables.rows).toHaveLength(0);
    await expect(q.enqueue(1)).rejects.toMatchObject({ code: '42704' });
  });

  it('errors name the SQL function and the queue', async () => {
    const q = new Queue(b.db, 'missing_q');
    const err = await q.dequeue(5).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MinipaasSqlError);
    expect(err).toMatchObject({ sqlFunction: 'minipaas_queue_dequeue', queue: 'missing_q', code: '42704' });
    expect((err as Error).message).toBe('minipaas_queue_dequeue: queue "missing_q" does not exist');
    const err2 = await q.ack([1]).catch((e: unknown) => e);
    expect(err2).toMatchObject({ sqlFunction: 'minipaas_queue_ack', queue: 'missing_q' });
  });

  it('refuses hostile names in SQL and in the client', async () => {
    const calls: [string, string][] = [
      ['minipaas_queue_create', 'SELECT minipaas_queue_create($1)'],
      ['minipaas_queue_enqueue', "SELECT * FROM minipaas_queue_enqueue($1, '{}'::jsonb)"],
      ['minipaas_queue_enqueue_batch', "SELECT * FROM minipaas_queue_enqueue_batch($1, ARRAY['{}'::jsonb])"],
      ['minipaas_queue_dequeue', 'SELECT * FROM minipaas_queue_dequeue($1, 1)'],
      ['minipaas_queue_ack', "SELECT minipaas_queue_ack($1, '{1}')"],
      ['minipaas_queue_nack', "SELECT * FROM minipaas_queue_nack($1, '{1}')"],
      ['minipaas_queue_metrics', 'SELECT * FROM minipaas_queue_metrics($1)'],
      ['minipaas_queue_purge', 'SELECT minipaas_queue_purge($1)'],
      ['minipaas_queue_drop', 'SELECT minipaas_queue_drop($1)'],
      ['minipaas_stream_create', 'SELECT minipaas_stream_create($1)'],
      ['minipaas_stream_publish', "SELECT * FROM minipaas_stream_publish($1, '{}'::jsonb)"],
      ['minipaas_stream_consume', 'SELECT * FROM minipaas_stream_consume($1, 0, 10)'],
      ['minipaas_stream_trim', 'SELECT minipaas_stream_trim($1, 10)'],
      ['minipaas_stream_drop', 'SELECT minipaas_stream_drop($1)'],
    ];
    const before = await b.db.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'minipaas'");
    for (const name of HOSTILE_NAMES) {
      for (const [fn, sql] of calls) {
        const err = await b.db
          .query(sql, [name])
          .catch((e: unknown) => e as { code?: string; message: string });
        expect(err, `${fn}(${String(name)})`).toMatchObject({ code: '22023' });
        expect((err as Error).message).toContain(`${fn}: invalid`);
      }
      expect(() => new Queue(b.db, name as string)).toThrow(MinipaasSqlError);
      expect(() => new Stream(b.db, name as string)).toThrow(/invalid stream name/);
    }
    const after = await b.db.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'minipaas'");
    expect(after.rows).toEqual(before.rows);
    // a valid 48-character name works
    await new Queue(b.db, `q${'x'.repeat(47)}`).create();
  });

  it('work() processes every message once and stops gracefully', async () => {
    const q = new Queue<{ n: number }>(b.db, 'work_q');
    await q.create();
    await q.enqueueBatch(Array.from({ length: 200 }, (_, n) => ({ n })));
    const seen = new Map<number, number>();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let holding = 0;
    const worker = q.work(
      async (m) => {
        seen.set(m.payload.n, (seen.get(m.payload.n) ?? 0) + 1);
        if (m.payload.n === 1000) {
          holding++;
          await gate;
        }
      },
      { concurrency: 8, batchSize: 4, pollIntervalMs: 50 },
    );
    await eventually(() => seen.size === 200, '200 messages handled');
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
    // graceful stop: a handler in flight finishes and is acked
    await q.enqueue({ n: 1000 });
    await eventually(() => holding === 1, 'slow handler started');
    const stopped = worker.stop();
    await delay(50);
    release();
    await stopped;
    expect(worker.stats).toEqual({ processed: 201, failed: 0 });
    expect(await q.metrics()).toMatchObject({ depth: 0, dead: 0 });
  });

  it('work() wakes on NOTIFY without waiting for the poll interval', async () => {
    const q = new Queue<string>(b.db, 'wake_q');
    await q.create();
    const got: string[] = [];
    const worker = q.work(
      (m) => {
        got.push(m.payload);
      },
      { pollIntervalMs: 120_000 },
    );
    await delay(100); // let the worker find the queue empty and go to sleep
    await new Queue<string>(b.other, 'wake_q').enqueue('ping');
    await eventually(() => got.length === 1, 'notified worker', 20_000);
    await worker.stop();
    expect(got).toEqual(['ping']);
  });

  it('work() retries failing handlers and dead-letters them after max attempts', async () => {
    const q = new Queue<{ n: number }>(b.db, 'fail_q');
    await q.create({ maxAttempts: 3, backoffBaseMs: 10, backoffMaxMs: 40 });
    await q.enqueueBatch([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const attempts = new Map<number, number[]>();
    const errors: unknown[] = [];
    const worker = q.work(
      (m) => {
        attempts.set(m.payload.n, [...(attempts.get(m.payload.n) ?? []), m.readCount]);
        if (m.payload.n !== 2) throw new Error(`handler failed for ${m.payload.n}`);
      },
      { concurrency: 3, pollIntervalMs: 20, onError: (e) => errors.push(e) },
    );
    await eventually(async () => (await q.metrics()).dead === 2, 'two dead letters');
    await worker.stop();
    expect(attempts.get(1)).toEqual([1, 2, 3]);
    expect(attempts.get(3)).toEqual([1, 2, 3]);
    expect(attempts.get(2)).toEqual([1]);
    expect(worker.stats).toEqual({ processed: 1, failed: 6 });
    expect(errors).toHaveLength(6);
    const dead = await q.dead();
    expect(dead.map((d) => d.payload.n).sort()).toEqual([1, 3]);
    expect(dead.every((d) => d.readCount === 3 && d.lastError?.startsWith('handler failed for'))).toBe(true);
    expect(await q.metrics()).toMatchObject({ depth: 0, dead: 2 });
  });

  it('work() with a heartbeat keeps long handlers leased', async () => {
    const q = new Queue<string>(b.db, 'beat_q');
    await q.create();
    await q.enqueue('long');
    const reads: number[] = [];
    const worker = q.work(
      async (m) => {
        reads.push(m.readCount);
        await delay(600);
      },
      { visibilityTimeoutMs: 200, heartbeatMs: 50, pollIntervalMs: 20, concurrency: 2 },
    );
    await eventually(async () => (await q.metrics()).depth === 0, 'long message acked');
    await worker.stop();
    expect(reads).toEqual([1]);
  });
});
