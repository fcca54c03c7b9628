/**
 * Tests that need a real server: separate connections, processes and open transactions.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../../test/helpers/postgres.ts';
import { migrate, pgExecutor, Queue, Stream } from '../src/index.ts';
import { eventually } from './backends.ts';

let database: { url: string; drop(): Promise<void> };
let pool: pg.Pool;

beforeAll(async () => {
  database = await createTestDatabase('sqlc');
  pool = new pg.Pool({ connectionString: database.url, max: 4 });
  await migrate(pgExecutor(pool));
});

afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: database.url });
  await c.connect();
  return c;
}

describe('queues under concurrency (postgres server)', () => {
  it('4 producers and 4 consumers on separate connections process 100,000 messages exactly once', async () => {
    const TOTAL = 100_000;
    const PRODUCERS = 4;
    const per = TOTAL / PRODUCERS;
    const q = new Queue<{ p: number; i: number }>(pgExecutor(pool), 'load_q');
    await q.create({ visibilityTimeoutMs: 600_000 });

    let producing = PRODUCERS;
    const producers = Array.from({ length: PRODUCERS }, async (_, p) => {
      const c = await client();
      const queue = q.using(pgExecutor(c as never));
      try {
        // mostly batches of 100, plus single enqueues
        for (let i = 0; i < per; ) {
          if (i % 5000 === 0) {
            for (let k = 0; k < 20; k++, i++) await queue.enqueue({ p, i });
          } else {
            const batch = Array.from({ length: Math.min(100, per - i) }, (_, k) => ({ p, i: i + k }));
            await queue.enqueueBatch(batch);
            i += batch.length;
          }
        }
      } finally {
        producing--;
        await c.end();
      }
    });

    const seen = new Uint8Array(TOTAL);
    let duplicates = 0;
    let acked = 0;
    let rawDequeued = 0;
    let rawAcked = 0;
    const record = (m: { payload: { p: number; i: number } }) => {
      const k = m.payload.p * per + m.payload.i;
      if (seen[k]) duplicates++;
      seen[k] = 1;
    };
    const done = () => producing === 0 && acked >= TOTAL;

    // two raw dequeue/ack consumers, each on its own connection
    const raw = Array.from({ length: 2 }, async (_, n) => {
      const c = await client();
      const queue = q.using(pgExecutor(c as never));
      try {
        while (!done()) {
          const batch = await queue.dequeue(n === 0 ? 100 : 10);
          if (batch.length === 0) {
            if (producing === 0 && (await queue.metrics()).depth === 0) break;
            await new Promise((r) => setTimeout(r, 5));
            continue;
          }
          for (const m of batch) record(m);
          rawDequeued += batch.length;
          // every id this consumer claimed is deleted by exactly this ack
          const deleted = await queue.ack(batch.map((m) => m.id));
          rawAcked += deleted;
          acked += deleted;
        }
      } finally {
        await c.end();
      }
    });

    // two workers (the client's work() loop), each with its own pool
    const pools = [0, 1].map(() => new pg.Pool({ connectionString: database.url, max: 3 }));
    const workers = pools.map((wp) =>
      q.using(pgExecutor(wp)).work(
        (m) => {
          record(m);
          acked++;
        },
        { concurrency: 50, batchSize: 50, pollIntervalMs: 50 },
      ),
    );

    try {
      await Promise.all(producers);
      await Promise.all(raw);
      await eventually(async () => (await q.metrics()).depth === 0, 'queue drained', 120_000);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await Promise.all(pools.map((p) => p.end()));
    }

    expect(duplicates).toBe(0);
    expect(seen.every((v) => v === 1)).toBe(true);
    expect(acked).toBe(TOTAL);
    expect(rawAcked).toBe(rawDequeued);
    expect(rawDequeued).toBeGreaterThan(0);
    const m = await q.metrics();
    expect(m).toMatchObject({ depth: 0, dead: 0, inFlight: 0 });
    const maxId = await pool.query('SELECT last_value FROM minipaas.q_load_q_id_seq');
    expect(Number(maxId.rows[0].last_value)).toBe(TOTAL);
  });

  it('a consumer killed mid-batch leads to redelivery after the visibility timeout', async () => {
    const q = new Queue<{ n: number }>(pgExecutor(pool), 'crash_q');
    await q.create();
    await q.enqueueBatch(Array.from({ length: 8 }, (_, n) => ({ n })));
    const script = fileURLToPath(new URL('./fixtures/hung-worker.ts', import.meta.url));
    const child = spawn(process.execPath, [script, database.url, 'crash_q', '5', '1000'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const claimed = await new Promise<number[]>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!) as number[]);
      });
      child.on('exit', (code) => reject(new Error(`worker exited early (${code})`)));
    });
    expect(claimed).toHaveLength(5);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    // the other three are still there; the five come back once their lease expires
    const redelivered: { id: number; readCount: number }[] = [];
    await eventually(async () => {
      for (const m of await q.dequeue(10, { visibilityTimeoutMs: 600_000 })) redelivered.push(m);
      return redelivered.filter((m) => claimed.includes(m.id)).length === 5;
    }, "redelivery of the killed consumer's messages");
    const again = redelivered.filter((m) => claimed.includes(m.id));
    expect(again.map((m) => m.id).sort((a, b) => a - b)).toEqual([...claimed].sort((a, b) => a - b));
    expect(again.every((m) => m.readCount === 2)).toBe(true);
    expect(redelivered.filter((m) => !claimed.includes(m.id)).every((m) => m.readCount === 1)).toBe(true);
    expect(await q.ack(redelivered.map((m) => m.id))).toBe(8);
  });
});

describe('streams never skip events (postgres server)', () => {
  it('a reader does not pass an event whose publishing transaction is still open', async () => {
    const s = new Stream<{ n: string }>(pgExecutor(pool), 'gap_s');
    await s.create();
    const before = await s.publish({ n: 'before' });
    const a = await client();
    const bClient = await client();
    try {
      // A opens a transaction, publishes, and holds it open
      await a.query('BEGIN');
      const ra = await a.query('SELECT * FROM minipaas_stream_publish(\'gap_s\', \'{"n":"A"}\')');
      const idA = Number(ra.rows[0].id);
      // B publishes in its own (auto-commit) transaction: it has to wait for A
      const bPid = (await bClient.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      const bDone = bClient.query('SELECT * FROM minipaas_stream_publish(\'gap_s\', \'{"n":"B"}\')');
      await eventually(async () => {
        const r = await pool.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [bPid]);
        return r.rows[0]?.wait_event_type === 'Lock';
      }, 'publisher B waiting behind the open transaction');
      // a reader and a live subscription see nothing after `before` yet
      expect(await s.consume(before.id)).toEqual([]);
      const live: number[] = [];
      await s.checkpoint('tail', before.id);
      const sub = s.subscribe(
        'tail',
        (e) => {
          live.push(e.id);
        },
        { pollIntervalMs: 20 },
      );
      // A commits last-opened-first... B can now draw its id, which is higher than A's
      await a.query('COMMIT');
      const rb = await bDone;
      const idB = Number(rb.rows[0].id);
      expect(idB).toBeGreaterThan(idA);
      await eventually(() => live.length === 2, 'subscription saw both events');
      await sub.stop();
      expect(live).toEqual([idA, idB]);
      expect((await s.consume(before.id)).map((e) => e.payload.n)).toEqual(['A', 'B']);
    } finally {
      await a.end();
      await bClient.end();
    }
  });

  it('a tailing reader sees every event exactly once while publishers hold transactions open', async () => {
    const s = new Stream<{ p: number; i: number }>(pgExecutor(pool), 'tail_s');
    await s.create();
    const PUBLISHERS = 4;
    const EACH = 40;
    const publishers = Array.from({ length: PUBLISHERS }, async (_, p) => {
      const c = await client();
      try {
        for (let i = 0; i < EACH; i++) {
          await c.query('BEGIN');
          await c.query('SELECT * FROM minipaas_stream_publish($1, $2::jsonb)', [
            'tail_s',
            JSON.stringify({ p, i }),
          ]);
          // keep the transaction open a little while others try to publish
          await new Promise((r) => setTimeout(r, Math.random() * 3));
          if (i % 10 === 9) await c.query('ROLLBACK');
          else await c.query('COMMIT');
        }
      } finally {
        await c.end();
      }
    });
    let publishing = PUBLISHERS;
    for (const p of publishers) p.finally(() => publishing--);
    const tail = q2();
    function q2() {
      return (async () => {
        const got: { id: number; p: number; i: number }[] = [];
        let after = 0;
        for (;;) {
          const done = publishing === 0;
          const batch = await s.consume(after, 7);
          for (const e of batch) got.push({ id: e.id, ...e.payload });
          if (batch.length) after = batch.at(-1)!.id;
          else if (done) return got;
          else await new Promise((r) => setTimeout(r, 1));
        }
      })();
    }
    await Promise.all(publishers);
    const got = await tail;
    const all = (await pool.query('SELECT id, payload FROM minipaas.s_tail_s ORDER BY id')).rows.map((r) => ({
      id: Number(r.id),
      ...(r.payload as { p: number; i: number }),
    }));
    expect(all).toHaveLength(PUBLISHERS * EACH * 0.9);
    expect(got).toEqual(all);
  });
});
