import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MinipaasSqlError, Stream, type StreamEvent } from '../src/index.ts';
import { type Backend, backends, delay, eventually } from './backends.ts';

describe.each(backends)('streams on $name', (factory) => {
  let b: Backend;
  beforeAll(async () => {
    b = await factory.open();
  });
  afterAll(async () => {
    await b?.close();
  });

  it('runs the seed SQL examples verbatim', async () => {
    const db = b.db;
    await db.query("SELECT minipaas_stream_create('activity_s');");
    const notes: string[] = [];
    const unlisten = await db.listen!('activity_s', (p) => notes.push(p));
    const pub = await db.query<{ id: number; payload: unknown }>(
      `SELECT * FROM minipaas_stream_publish('activity_s', '{"action":"signup"}'::jsonb);`,
    );
    expect(pub.rows[0]!.payload).toEqual({ action: 'signup' });
    expect(Number(pub.rows[0]!.id)).toBe(1);
    const consumed = await db.query("SELECT * FROM minipaas_stream_consume('activity_s', 42, 25);");
    expect(consumed.rows).toEqual([]);
    const all = await db.query<{ id: number }>("SELECT * FROM minipaas_stream_consume('activity_s', 0, 25);");
    expect(all.rows.map((r) => Number(r.id))).toEqual([1]);
    await db.query('LISTEN "activity_s";');
    await eventually(() => notes.length > 0, 'NOTIFY on channel activity_s');
    await unlisten();
  });

  it('publishes and consumes in order after an id', async () => {
    const s = new Stream<{ n: number }>(b.db, 'order_s');
    await s.create();
    const one = await s.publish({ n: 0 });
    const batch = await s.publishBatch(Array.from({ length: 59 }, (_, i) => ({ n: i + 1 })));
    expect(batch.map((e) => e.payload.n)).toEqual(Array.from({ length: 59 }, (_, i) => i + 1));
    const first = await s.consume(0, 25);
    expect(first.map((e) => e.payload.n)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(first[0]!.id).toBe(one.id);
    const next = await s.consume(first.at(-1)!.id, 1000);
    expect(next.map((e) => e.payload.n)).toEqual(Array.from({ length: 35 }, (_, i) => i + 25));
    expect(await s.consume(next.at(-1)!.id)).toEqual([]);
    expect(await s.metrics()).toMatchObject({
      name: 'order_s',
      events: 60,
      firstId: one.id,
      lastId: next.at(-1)!.id,
    });
    await expect(s.consume(0, 0)).rejects.toBeInstanceOf(MinipaasSqlError);
    await expect(s.publish(undefined as never)).rejects.toThrow(/payload/);
  });

  it('keeps named consumer checkpoints (monotonic), seeks and reports lag', async () => {
    const s = new Stream<string>(b.db, 'ckpt_s');
    await s.create();
    const events = await s.publishBatch(['a', 'b', 'c', 'd']);
    expect(await s.position('mailer')).toBe(0);
    expect(await s.checkpoint('mailer', events[1]!.id)).toBe(events[1]!.id);
    expect(await s.checkpoint('mailer', events[0]!.id)).toBe(events[1]!.id); // never backwards
    const after = await b.db.query<{ payload: string }>(
      "SELECT * FROM minipaas_stream_consume_as('ckpt_s', 'mailer', 10)",
    );
    expect(after.rows.map((r) => r.payload)).toEqual(['c', 'd']);
    expect(await s.seek('audit', 0)).toBe(0);
    expect(await s.seek('mailer', events[0]!.id)).toBe(events[0]!.id);
    const consumers = await s.consumers();
    expect(consumers.map((c) => [c.consumer, c.lastId, c.lag])).toEqual([
      ['audit', 0, 4],
      ['mailer', events[0]!.id, 3],
    ]);
  });

  it('trims by id, by age and by retention', async () => {
    const s = new Stream<number>(b.db, 'trim_s');
    await s.create({ retentionMs: 3_600_000 });
    const ev = await s.publishBatch([1, 2, 3, 4, 5]);
    expect(await s.trim()).toBe(0); // nothing older than the retention
    expect(await s.trim({ beforeId: ev[2]!.id })).toBe(2);
    expect((await s.consume(0)).map((e) => e.payload)).toEqual([3, 4, 5]);
    await b.db.query(
      "UPDATE minipaas.s_trim_s SET published_at = now() - interval '2 hours' WHERE payload = '3'",
    );
    expect(await s.trim()).toBe(1);
    await delay(20);
    expect(await s.trim({ olderThanMs: 0 })).toBe(2);
    expect(await s.consume(0)).toEqual([]);
    const next = await s.publish(6);
    expect(next.id).toBeGreaterThan(ev[4]!.id);
  });

  it('subscribe() delivers in order, checkpoints, resumes, and retries failures in place', async () => {
    const s = new Stream<{ n: number }>(b.db, 'sub_s');
    await s.create();
    await s.publishBatch(Array.from({ length: 30 }, (_, n) => ({ n })));
    const seen: number[] = [];
    let failOnce = true;
    const errors: unknown[] = [];
    const sub = s.subscribe(
      'projector',
      (e: StreamEvent<{ n: number }>) => {
        if (e.payload.n === 17 && failOnce) {
          failOnce = false;
          throw new Error('transient');
        }
        seen.push(e.payload.n);
      },
      { batchSize: 7, pollIntervalMs: 30, retryDelayMs: 10, onError: (err) => errors.push(err) },
    );
    await eventually(() => seen.length === 30, '30 events');
    expect(seen).toEqual(Array.from({ length: 30 }, (_, n) => n));
    expect(errors).toHaveLength(1);
    await new Stream<{ n: number }>(b.other, 'sub_s').publish({ n: 30 });
    await eventually(() => seen.length === 31, 'live event');
    await sub.stop();
    const last = sub.position;
    expect(await s.position('projector')).toBe(last);
    await s.publishBatch([{ n: 31 }, { n: 32 }]);
    const resumed: number[] = [];
    const sub2 = s.subscribe('projector', (e) => {
      resumed.push(e.payload.n);
    });
    await eventually(() => resumed.length === 2, 'resumed events');
    await sub2.stop();
    expect(resumed).toEqual([31, 32]);
  });

  it('drops a stream with its checkpoints', async () => {
    const s = new Stream(b.db, 'drop_s');
    await s.create();
    await s.publish({});
    await s.checkpoint('c', 1);
    expect(await s.drop()).toBe(true);
    expect(await s.drop()).toBe(false);
    const err = await s.publish({}).catch((e: unknown) => e);
    expect(err).toMatchObject({ sqlFunction: 'minipaas_stream_publish', stream: 'drop_s', code: '42704' });
    const left = await b.db.query("SELECT 1 FROM minipaas.stream_checkpoints WHERE stream = 'drop_s'");
    expect(left.rows).toEqual([]);
  });
});
