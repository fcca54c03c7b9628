/**
 * The queues under test, behind one small interface. Peers are loaded from bench/.scratch/queue
 * (installed at run time, never committed).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { migrate, pgExecutor, Queue } from '../../packages/sql/src/index.ts';

export interface Payload {
  i: number;
  /** send time, ms since the time origin (performance.timeOrigin + performance.now()) */
  t: number;
}

export interface System {
  name: string;
  /** Only takes part in the drain rows (a second way to consume with the same package). */
  drainOnly?: boolean;
  version: string;
  /** Creates a fresh, empty queue and returns its name. */
  newQueue(): Promise<string>;
  /** Enqueues `count` messages one call at a time on `producers` parallel connections. */
  enqueue(queue: string, count: number, batch: number, producers: number): Promise<void>;
  /** Loads `count` messages as fast as possible (not measured). */
  preload(queue: string, count: number): Promise<void>;
  /**
   * Dequeues and completes up to `count` messages with `consumers` parallel consumers claiming `batch`
   * at a time, stopping early at `deadline` (ms, like now()). Returns how many were completed.
   */
  drain(queue: string, count: number, batch: number, consumers: number, deadline: number): Promise<number>;
  /** Starts a consumer that calls `onMessage` for each message; returns a stop function. */
  consume(queue: string, onMessage: (p: Payload) => void): Promise<() => Promise<void>>;
  /** Enqueues one message (for the latency test). */
  send(queue: string, payload: Payload): Promise<void>;
  close(): Promise<void>;
}

export const now = () => performance.timeOrigin + performance.now();

function payloads(from: number, n: number): Payload[] {
  const t = now();
  return Array.from({ length: n }, (_, k) => ({ i: from + k, t }));
}

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {}); // the server going away at the end of a run is expected
  await c.connect();
  return c;
}

/** Runs `count` items split over `workers` parallel loops; `step(worker, from, n)` handles n items. */
async function split(
  count: number,
  chunk: number,
  workers: number,
  step: (worker: number, from: number, n: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (;;) {
        const from = next;
        if (from >= count) return;
        const n = Math.min(chunk, count - from);
        next += n;
        await step(w, from, n);
      }
    }),
  );
}

let queueSeq = 0;
const freshName = (prefix: string) => `${prefix}_${++queueSeq}_${process.pid}`;

// ----------------------------------------------------------------------------------------------
// @minipaas/sql (through its TypeScript client)

export async function minipaas(url: string): Promise<System[]> {
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  await migrate(pgExecutor(pool));
  const conns: pg.Client[] = [];
  for (let i = 0; i < 4; i++) conns.push(await connect(url));
  // one pool per worker: LISTEN, dequeue and batched acks each use a connection
  const workerPools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: url, max: 4 }));
  const q = (c: pg.Client | pg.Pool, name: string) => new Queue<Payload>(pgExecutor(c), name);
  const main: System = {
    name: '@minipaas/sql',
    version: 'this repo',
    async newQueue() {
      const name = freshName('mp');
      await q(pool, name).create({ visibilityTimeoutMs: 600_000 });
      return name;
    },
    async enqueue(queue, count, batch, producers) {
      const qs = conns.slice(0, producers).map((c) => q(c, queue));
      await split(count, batch, producers, async (w, from, n) => {
        if (batch === 1) await qs[w]!.enqueue({ i: from, t: now() });
        else await qs[w]!.enqueueBatch(payloads(from, n));
      });
    },
    async preload(queue, count) {
      const qq = q(pool, queue);
      await split(count, 5000, 4, async (_, from, n) => {
        await qq.enqueueBatch(payloads(from, n));
      });
    },
    // the package's consumer: Queue.work() (claims `batch` at a time, batched acks)
    async drain(queue, count, batch, consumers, deadline) {
      let done = 0;
      let finish: () => void = () => {};
      const all = new Promise<void>((r) => {
        finish = r;
      });
      const workers = workerPools.slice(0, consumers).map((p) =>
        q(p, queue).work(
          () => {
            if (++done === count) finish();
          },
          { concurrency: batch, batchSize: batch, pollIntervalMs: 100 },
        ),
      );
      const timer = setTimeout(finish, Math.max(0, deadline - now()));
      await all;
      clearTimeout(timer);
      const completed = done;
      await Promise.all(workers.map((w) => w.stop()));
      return completed;
    },
    async consume(queue, onMessage) {
      const worker = q(workerPools[0]!, queue).work((m) => onMessage(m.payload), {
        concurrency: 4,
        pollIntervalMs: 1000,
      });
      return () => worker.stop();
    },
    async send(queue, payload) {
      await q(conns[0]!, queue).enqueue(payload);
    },
    async close() {
      await Promise.all(conns.map((c) => c.end()));
      await Promise.all(workerPools.map((p) => p.end()));
      await pool.end();
    },
  };
  // the same package driven by a plain dequeue/ack loop (what the pgmq and pg-boss rows do)
  const loop: System = {
    ...main,
    name: '@minipaas/sql (dequeue/ack loop)',
    drainOnly: true,
    async drain(queue, count, batch, consumers, deadline) {
      let done = 0;
      await Promise.all(
        conns.slice(0, consumers).map(async (c) => {
          const qq = q(c, queue);
          while (done < count && now() < deadline) {
            const msgs = await qq.dequeue(batch);
            if (msgs.length === 0) continue;
            await qq.ack(msgs.map((m) => m.id));
            done += msgs.length;
          }
        }),
      );
      return done;
    },
    async close() {},
  };
  return [main, loop];
}

// ----------------------------------------------------------------------------------------------
// pgmq (its plain-SQL install; called with named prepared statements like our client)

export async function pgmq(url: string, sql: string, version: string): Promise<System> {
  const admin = await connect(url);
  await admin.query(sql);
  const conns: pg.Client[] = [];
  for (let i = 0; i < 4; i++) conns.push(await connect(url));
  const run = (c: pg.Client, name: string, text: string, values: unknown[]) =>
    c.query({ name, text, values });
  return {
    name: 'pgmq',
    version,
    async newQueue() {
      const name = freshName('pgmq');
      await admin.query('SELECT pgmq.create($1)', [name]);
      return name;
    },
    async enqueue(queue, count, batch, producers) {
      await split(count, batch, producers, async (w, from, n) => {
        const c = conns[w]!;
        if (batch === 1) {
          await run(c, 'pgmq_send', 'SELECT * FROM pgmq.send($1, $2::jsonb)', [
            queue,
            JSON.stringify({ i: from, t: now() }),
          ]);
        } else {
          await run(c, 'pgmq_send_batch', 'SELECT * FROM pgmq.send_batch($1, $2::jsonb[])', [
            queue,
            payloads(from, n).map((p) => JSON.stringify(p)),
          ]);
        }
      });
    },
    async preload(queue, count) {
      await split(count, 5000, 4, async (w, from, n) => {
        await conns[w]!.query('SELECT * FROM pgmq.send_batch($1, $2::jsonb[])', [
          queue,
          payloads(from, n).map((p) => JSON.stringify(p)),
        ]);
      });
    },
    async drain(queue, count, batch, consumers, deadline) {
      let done = 0;
      await Promise.all(
        conns.slice(0, consumers).map(async (c) => {
          while (done < count && now() < deadline) {
            const r = await run(c, 'pgmq_read', 'SELECT msg_id, message FROM pgmq.read($1, 600, $2)', [
              queue,
              batch,
            ]);
            if (r.rows.length === 0) continue;
            await run(c, 'pgmq_delete', 'SELECT pgmq.delete($1, $2::bigint[])', [
              queue,
              r.rows.map((x) => x.msg_id),
            ]);
            done += r.rows.length;
          }
        }),
      );
      return done;
    },
    async consume(queue, onMessage) {
      // pgmq has no push; its documented low-latency read is read_with_poll (server-side polling)
      const c = await connect(url);
      let stopping = false;
      const loop = (async () => {
        while (!stopping) {
          const r = await c.query({
            name: 'pgmq_poll',
            text: 'SELECT msg_id, message FROM pgmq.read_with_poll($1, 30, 10, 1, 10)',
            values: [queue],
          });
          for (const row of r.rows) onMessage(row.message as Payload);
          if (r.rows.length)
            await c.query('SELECT pgmq.delete($1, $2::bigint[])', [queue, r.rows.map((x) => x.msg_id)]);
        }
      })();
      return async () => {
        stopping = true;
        await loop;
        await c.end();
      };
    },
    async send(queue, payload) {
      await run(conns[0]!, 'pgmq_send', 'SELECT * FROM pgmq.send($1, $2::jsonb)', [
        queue,
        JSON.stringify(payload),
      ]);
    },
    async close() {
      await Promise.all(conns.map((c) => c.end()));
      await admin.end();
    },
  };
}

// ----------------------------------------------------------------------------------------------
// graphile-worker (its own runner: LISTEN/NOTIFY, localQueue batching, batched completion)

interface GraphileModule {
  run(options: Record<string, unknown>): Promise<{ stop(): Promise<void>; promise: Promise<void> }>;
  makeWorkerUtils(options: Record<string, unknown>): Promise<{
    addJob(task: string, payload: unknown, spec?: Record<string, unknown>): Promise<unknown>;
    addJobs(specs: { identifier: string; payload: unknown; queueName?: string }[]): Promise<unknown>;
    migrate(): Promise<void>;
    release(): Promise<void>;
  }>;
}

type Logger = unknown;

export async function loadScratch<T>(scratch: string, pkg: string): Promise<T> {
  const require = createRequire(join(scratch, 'package.json'));
  return (await import(pathToFileURL(require.resolve(pkg)).href)) as T;
}

export function scratchVersion(scratch: string, pkg: string): string {
  const file = join(scratch, 'node_modules', pkg, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

export async function graphile(url: string, scratch: string): Promise<System> {
  const gw = await loadScratch<GraphileModule & { Logger: new (f: () => () => void) => Logger }>(
    scratch,
    'graphile-worker',
  );
  const logger = new gw.Logger(() => () => {});
  const producers: Awaited<ReturnType<GraphileModule['makeWorkerUtils']>>[] = [];
  for (let i = 0; i < 4; i++) producers.push(await gw.makeWorkerUtils({ connectionString: url, logger }));
  await producers[0]!.migrate();
  const admin = await connect(url);
  const runWorker = async (concurrency: number, batch: number, task: string, onJob: (p: Payload) => void) => {
    const worker: Record<string, unknown> = { completeJobBatchDelay: batch > 1 ? 0 : -1 };
    if (batch > 1) worker.localQueue = { size: batch };
    return gw.run({
      connectionString: url,
      concurrency,
      noHandleSignals: true,
      pollInterval: 1000,
      logger,
      taskList: { [task]: async (p: unknown) => onJob(p as Payload) },
      preset: { worker },
    });
  };
  return {
    name: 'graphile-worker',
    version: scratchVersion(scratch, 'graphile-worker'),
    async newQueue() {
      // one jobs table; a fresh task identifier per run, and an empty table
      await admin.query('DELETE FROM graphile_worker._private_jobs');
      await admin.query('VACUUM graphile_worker._private_jobs');
      return freshName('gw');
    },
    async enqueue(queue, count, batch, nproducers) {
      await split(count, batch, nproducers, async (w, from, n) => {
        if (batch === 1) await producers[w]!.addJob(queue, { i: from, t: now() });
        else
          await producers[w]!.addJobs(payloads(from, n).map((payload) => ({ identifier: queue, payload })));
      });
    },
    async preload(queue, count) {
      await split(count, 5000, 4, async (w, from, n) => {
        await producers[w]!.addJobs(payloads(from, n).map((payload) => ({ identifier: queue, payload })));
      });
    },
    async drain(queue, count, batch, consumers, deadline) {
      let done = 0;
      let finish: () => void = () => {};
      const all = new Promise<void>((r) => {
        finish = r;
      });
      const runner = await runWorker(consumers, batch, queue, () => {
        if (++done === count) finish();
      });
      const timer = setTimeout(finish, Math.max(0, deadline - now()));
      await all;
      clearTimeout(timer);
      const completed = done;
      await runner.stop();
      return completed;
    },
    async consume(queue, onMessage) {
      const runner = await runWorker(4, 1, queue, onMessage);
      return () => runner.stop();
    },
    async send(queue, payload) {
      await producers[0]!.addJob(queue, payload);
    },
    async close() {
      await Promise.all(producers.map((p) => p.release()));
      await admin.end();
    },
  };
}

// ----------------------------------------------------------------------------------------------
// pg-boss

interface BossJob {
  id: string;
  data: unknown;
}
interface Boss {
  start(): Promise<unknown>;
  stop(options?: Record<string, unknown>): Promise<void>;
  on(event: 'error', cb: (e: unknown) => void): unknown;
  createQueue(name: string): Promise<void>;
  send(name: string, data: object): Promise<unknown>;
  insert(name: string, jobs: { data: object }[]): Promise<void>;
  fetch(name: string, options: { batchSize: number }): Promise<BossJob[]>;
  complete(name: string, ids: string[]): Promise<void>;
  work(
    name: string,
    options: Record<string, unknown>,
    handler: (jobs: BossJob[]) => Promise<void>,
  ): Promise<string>;
  offWork(name: string): Promise<void>;
}

export async function pgboss(url: string, scratch: string): Promise<System> {
  const mod = await loadScratch<{ PgBoss?: new (o: object) => Boss; default?: unknown }>(scratch, 'pg-boss');
  const Ctor = (typeof mod.default === 'function' ? mod.default : mod.PgBoss) as new (o: object) => Boss;
  const make = async () => {
    const b = new Ctor({ connectionString: url, max: 4, schedule: false, supervise: false, migrate: true });
    b.on('error', () => {});
    await b.start();
    return b;
  };
  const bosses: Boss[] = [];
  for (let i = 0; i < 4; i++) bosses.push(await make());
  return {
    name: 'pg-boss',
    version: scratchVersion(scratch, 'pg-boss'),
    async newQueue() {
      const name = freshName('boss');
      await bosses[0]!.createQueue(name);
      return name;
    },
    async enqueue(queue, count, batch, producers) {
      await split(count, batch, producers, async (w, from, n) => {
        if (batch === 1) await bosses[w]!.send(queue, { i: from, t: now() });
        else
          await bosses[w]!.insert(
            queue,
            payloads(from, n).map((data) => ({ data })),
          );
      });
    },
    async preload(queue, count) {
      await split(count, 5000, 4, async (w, from, n) => {
        await bosses[w]!.insert(
          queue,
          payloads(from, n).map((data) => ({ data })),
        );
      });
    },
    async drain(queue, count, batch, consumers, deadline) {
      let done = 0;
      await Promise.all(
        bosses.slice(0, consumers).map(async (b) => {
          while (done < count && now() < deadline) {
            const jobs = await b.fetch(queue, { batchSize: batch });
            if (jobs.length === 0) continue;
            await b.complete(
              queue,
              jobs.map((j) => j.id),
            );
            done += jobs.length;
          }
        }),
      );
      return done;
    },
    async consume(queue, onMessage) {
      // pg-boss polls; 0.5 s is its smallest polling interval
      await bosses[1]!.work(queue, { batchSize: 100, pollingIntervalSeconds: 0.5 }, async (jobs) => {
        for (const j of jobs) onMessage(j.data as Payload);
      });
      return () => bosses[1]!.offWork(queue);
    },
    async send(queue, payload) {
      await bosses[0]!.send(queue, payload);
    },
    async close() {
      await Promise.all(bosses.map((b) => b.stop({ graceful: false, wait: true })));
    },
  };
}
