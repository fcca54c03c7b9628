/**
 * Queue benchmark: @minipaas/sql against pgmq, graphile-worker and pg-boss, side by side in one run
 * on one local PostgreSQL server that this script starts (and stops).
 *
 *   npx node bench/queue/run.ts [--messages 100000] [--rounds 3] [--drain-rounds 2] [--drain-cap 15]
 *                               [--quick] [--systems minipaas,pgmq,graphile,pgboss] [--no-install] [--write-docs]
 *
 * Peers are installed at run time into bench/.scratch/queue (gitignored). pgmq is installed from its
 * plain-SQL file: put pgmq's `pgmq-extension/sql/pgmq.sql` at bench/.scratch/queue/pgmq.sql (or set
 * PGMQ_SQL=/path/to/pgmq.sql). Results go to bench/results/queue.json; --write-docs also refreshes the
 * Queue section of docs/benchmarks.md.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { startTestPostgres } from '../../test/helpers/postgres-server.ts';
import { graphile, minipaas, now, type Payload, pgboss, pgmq, type System } from './systems.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRATCH = join(ROOT, 'bench/.scratch/queue');
const RESULTS = join(ROOT, 'bench/results/queue.json');
const DOCS = join(ROOT, 'docs/benchmarks.md');
const PEERS = { 'graphile-worker': '0.18.0', 'pg-boss': '11.1.1' };

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const quick = flag('quick');
const DRAIN = Number(opt('messages', quick ? '10000' : '100000'));
const ENQ_SINGLE = Number(opt('enqueue-single', quick ? '2000' : '10000'));
const ENQ_BATCH = Number(opt('enqueue-batch', quick ? '10000' : '100000'));
const LAT_RATE = Number(opt('latency-rate', '200'));
const LAT_COUNT = Number(opt('latency-count', quick ? '200' : '1000'));
const wanted = opt('systems', 'minipaas,pgmq,graphile,pgboss').split(',');
const ROUNDS = Number(opt('rounds', quick ? '1' : '3'));
const DRAIN_ROUNDS = Number(opt('drain-rounds', quick ? '1' : '2'));
/** A drain stops after this many seconds; the rate is then measured over what was drained. */
const DRAIN_CAP_S = Number(opt('drain-cap', quick ? '10' : '15'));

const log = (msg: string) => process.stderr.write(`${msg}\n`);

async function ensurePeers() {
  const missing = Object.keys(PEERS).filter(
    (p) => !existsSync(join(SCRATCH, 'node_modules', p, 'package.json')),
  );
  if (missing.length === 0) return;
  if (flag('no-install')) throw new Error(`missing peers in ${SCRATCH}: ${missing.join(', ')}`);
  mkdirSync(SCRATCH, { recursive: true });
  if (!existsSync(join(SCRATCH, 'package.json'))) {
    writeFileSync(
      join(SCRATCH, 'package.json'),
      '{ "name": "minipaas-bench-queue-scratch", "private": true }\n',
    );
  }
  log(`installing ${missing.join(', ')} into ${SCRATCH}`);
  await run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--workspaces=false',
      ...Object.entries(PEERS).map(([p, v]) => `${p}@${v}`),
    ],
    { cwd: SCRATCH },
  );
}

function pgmqSql(): { sql: string; version: string } | null {
  const file = process.env.PGMQ_SQL ?? join(SCRATCH, 'pgmq.sql');
  if (!existsSync(file)) return null;
  const sql = readFileSync(file, 'utf8');
  const version = process.env.PGMQ_VERSION ?? '1.5.1 (pgmq.sql)';
  return { sql, version };
}

async function createDb(admin: pg.Client, base: string, name: string): Promise<string> {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

interface Entry {
  system: System;
  url: string;
}

async function vacuum(url: string) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('VACUUM ANALYZE');
  await c.end();
}

async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

interface Row {
  scenario: string;
  unit: string;
  /** system name -> value */
  values: Record<string, number>;
}

async function main() {
  await ensurePeers();
  log('starting PostgreSQL');
  const pgServer = await startTestPostgres();
  log(`PostgreSQL at ${pgServer?.url}`);
  if (!pgServer) throw new Error('PostgreSQL server binaries not found (apt-get install -y postgresql)');
  const admin = new pg.Client({ connectionString: pgServer.url });
  await admin.connect();
  const entries: Entry[] = [];
  const skipped: Record<string, string> = {};
  try {
    const pgVersion = (await admin.query('SHOW server_version')).rows[0].server_version as string;
    if (wanted.includes('minipaas')) {
      const url = await createDb(admin, pgServer.url, 'bench_minipaas');
      for (const system of await minipaas(url)) entries.push({ system, url });
    }
    if (wanted.includes('pgmq')) {
      const p = pgmqSql();
      if (p) {
        const url = await createDb(admin, pgServer.url, 'bench_pgmq');
        entries.push({ system: await pgmq(url, p.sql, p.version), url });
      } else {
        skipped.pgmq = `pgmq.sql not found (put it at ${join(SCRATCH, 'pgmq.sql')} or set PGMQ_SQL)`;
        log(`NOT RUN: pgmq: ${skipped.pgmq}`);
      }
    }
    if (wanted.includes('graphile')) {
      const url = await createDb(admin, pgServer.url, 'bench_graphile');
      entries.push({ system: await graphile(url, SCRATCH), url });
    }
    if (wanted.includes('pgboss')) {
      const url = await createDb(admin, pgServer.url, 'bench_pgboss');
      entries.push({ system: await pgboss(url, SCRATCH), url });
    }
    const rows: Row[] = [];
    // Each scenario runs `rounds` times with the systems interleaved (order rotated per round);
    // the best round counts, which filters out noise from other work on a shared machine.
    const measure = async (
      scenario: string,
      rounds: number,
      body: (e: Entry, queue: string) => Promise<number>,
    ) => {
      const row: Row = { scenario, unit: 'msg/s', values: {} };
      const taking = entries.filter((e) => scenario.startsWith('drain') || !e.system.drainOnly);
      for (let r = 0; r < rounds; r++) {
        const order = taking.map((_, i) => taking[(i + r) % taking.length]!);
        for (const e of order) {
          const queue = await e.system.newQueue();
          await vacuum(e.url);
          const v = Math.round(await body(e, queue));
          row.values[e.system.name] = Math.max(row.values[e.system.name] ?? 0, v);
          log(`${scenario.padEnd(40)} ${e.system.name.padEnd(16)} ${v} msg/s (round ${r + 1})`);
        }
      }
      rows.push(row);
    };

    await measure('enqueue, batch 1, 1 producer', ROUNDS, async (e, q) => {
      const s = await time(() => e.system.enqueue(q, ENQ_SINGLE, 1, 1));
      return ENQ_SINGLE / s;
    });
    await measure('enqueue, batch 1, 4 producers', ROUNDS, async (e, q) => {
      const s = await time(() => e.system.enqueue(q, ENQ_SINGLE, 1, 4));
      return ENQ_SINGLE / s;
    });
    await measure('enqueue, batch 100, 1 producer', ROUNDS, async (e, q) => {
      const s = await time(() => e.system.enqueue(q, ENQ_BATCH, 100, 1));
      return ENQ_BATCH / s;
    });
    for (const consumers of [1, 4]) {
      for (const batch of [1, 10, 100]) {
        const name = `drain ${DRAIN}, batch ${batch}, ${consumers} consumer${consumers > 1 ? 's' : ''}`;
        await measure(name, DRAIN_ROUNDS, async (e, q) => {
          await e.system.preload(q, DRAIN);
          await vacuum(e.url);
          let done = 0;
          const s = await time(async () => {
            done = await e.system.drain(q, DRAIN, batch, consumers, now() + DRAIN_CAP_S * 1000);
          });
          return done / s;
        });
      }
    }

    const latency: { system: string; p50: number; p99: number; max: number; samples: number }[] = [];
    for (const e of entries.filter((x) => !x.system.drainOnly)) {
      const queue = await e.system.newQueue();
      await vacuum(e.url);
      const samples: number[] = [];
      const stop = await e.system.consume(queue, (p: Payload) => {
        samples.push(now() - p.t);
      });
      await new Promise((r) => setTimeout(r, 500)); // let the consumer settle into its idle wait
      const interval = 1000 / LAT_RATE;
      const t0 = now();
      for (let i = 0; i < LAT_COUNT; i++) {
        const due = t0 + i * interval;
        const wait = due - now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        await e.system.send(queue, { i, t: now() });
      }
      const deadline = now() + 15_000;
      while (samples.length < LAT_COUNT && now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await stop();
      const sorted = [...samples].sort((a, b) => a - b);
      const r = {
        system: e.system.name,
        p50: Number(pct(sorted, 50).toFixed(2)),
        p99: Number(pct(sorted, 99).toFixed(2)),
        max: Number((sorted.at(-1) ?? Number.NaN).toFixed(2)),
        samples: samples.length,
      };
      latency.push(r);
      log(
        `latency ${LAT_RATE}/s x ${LAT_COUNT}: ${r.system.padEnd(16)} p50 ${r.p50} ms  p99 ${r.p99} ms (${r.samples} received)`,
      );
    }

    const result = {
      generatedAt: new Date().toISOString(),
      command: `npx node bench/queue/run.ts ${args.join(' ')}`.trim(),
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        kernel: release(),
        node: process.version,
        postgres: pgVersion,
        postgresSettings: 'local throwaway cluster: fsync=off, synchronous_commit=off, full_page_writes=off',
      },
      systems: entries.map((e) => ({ name: e.system.name, version: e.system.version })),
      notRun: skipped,
      config: {
        rounds: ROUNDS,
        drainRounds: DRAIN_ROUNDS,
        drainCapSeconds: DRAIN_CAP_S,
        drainMessages: DRAIN,
        enqueueSingle: ENQ_SINGLE,
        enqueueBatch: ENQ_BATCH,
        latencyRate: LAT_RATE,
        latencyCount: LAT_COUNT,
      },
      throughput: rows,
      latency,
    };
    mkdirSync(dirname(RESULTS), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
    const md = markdown(result);
    process.stdout.write(`${md}\n`);
    if (flag('write-docs')) writeDocs(md);
  } finally {
    for (const e of entries.reverse())
      await e.system.close().catch((err: unknown) => log(`close ${e.system.name}: ${err}`));
    await admin.end();
    await pgServer.stop();
  }
}

interface Result {
  generatedAt: string;
  command: string;
  machine: Record<string, string | number>;
  systems: { name: string; version: string }[];
  notRun: Record<string, string>;
  config: {
    rounds: number;
    drainRounds: number;
    drainCapSeconds: number;
    drainMessages: number;
    enqueueSingle: number;
    enqueueBatch: number;
    latencyRate: number;
    latencyCount: number;
  };
  throughput: Row[];
  latency: { system: string; p50: number; p99: number; max: number; samples: number }[];
}

function markdown(r: Result): string {
  const ours = '@minipaas/sql';
  const variants = r.systems.map((s) => s.name).filter((n) => n.startsWith(`${ours} (`));
  const peers = r.systems.map((s) => s.name).filter((n) => n !== ours && !variants.includes(n));
  const cols = [ours, ...variants, ...peers];
  const fmt = (n: number | undefined) => (n === undefined ? 'n/a' : n.toLocaleString('en-US'));
  const ratio = (a?: number, b?: number) => (a && b ? `${(a / b).toFixed(2)}x` : 'n/a');
  const lines: string[] = [];
  lines.push(`Measured ${r.generatedAt.slice(0, 10)} with \`${r.command}\`.`);
  lines.push('');
  lines.push(
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Linux ${r.machine.kernel}, Node ${r.machine.node}, PostgreSQL ${r.machine.postgres} (${r.machine.postgresSettings}). ` +
      `Peers: ${r.systems.map((s) => `${s.name} ${s.version}`).join(', ')}.` +
      (Object.keys(r.notRun).length
        ? ` Not run: ${Object.entries(r.notRun)
            .map(([k, v]) => `${k} (${v})`)
            .join('; ')}.`
        : ''),
  );
  lines.push('');
  lines.push(
    `Throughput (messages per second, higher is better; ratio = @minipaas/sql ÷ peer). Enqueue rows: ${r.config.enqueueSingle.toLocaleString('en-US')} single messages / ${r.config.enqueueBatch.toLocaleString('en-US')} in batches of 100, best of ${r.config.rounds} interleaved rounds. ` +
      `Drain rows: ${r.config.drainMessages.toLocaleString('en-US')} preloaded messages, dequeue + complete, best of ${r.config.drainRounds}; a drain stops after ${r.config.drainCapSeconds} s and the rate is taken over what it completed.`,
  );
  lines.push('');
  lines.push(`| scenario | ${cols.join(' | ')} | ${peers.map((p) => `vs ${p}`).join(' | ')} |`);
  lines.push(`| --- | ${cols.map(() => '---:').join(' | ')} | ${peers.map(() => '---:').join(' | ')} |`);
  for (const row of r.throughput) {
    const v = row.values;
    lines.push(
      `| ${row.scenario} | ${cols.map((s) => fmt(v[s])).join(' | ')} | ${peers.map((p) => ratio(v[ours], v[p])).join(' | ')} |`,
    );
  }
  lines.push('');
  lines.push(
    `Enqueue-to-handler latency at a fixed rate (${r.config.latencyRate} msg/s, ${r.config.latencyCount} messages, one consumer process per system; ms, lower is better):`,
  );
  lines.push('');
  lines.push('| system | p50 | p99 | max | received |');
  lines.push('| --- | ---: | ---: | ---: | ---: |');
  for (const l of r.latency) lines.push(`| ${l.system} | ${l.p50} | ${l.p99} | ${l.max} | ${l.samples} |`);
  return lines.join('\n');
}

const BEGIN = '<!-- queue-bench:begin -->';
const END = '<!-- queue-bench:end -->';

function writeDocs(md: string) {
  const text = existsSync(DOCS) ? readFileSync(DOCS, 'utf8') : '# Benchmarks\n';
  const block = `${BEGIN}\n${md}\n${END}`;
  if (text.includes(BEGIN) && text.includes(END)) {
    writeFileSync(
      DOCS,
      text.replace(new RegExp(`${BEGIN}[\\s\\S]*?${END}`), () => block),
    );
  } else {
    log(`docs/benchmarks.md has no ${BEGIN} block; not updated`);
  }
}

await main();
