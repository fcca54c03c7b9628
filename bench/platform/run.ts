/**
 * Platform benchmark: MiniPaaS against its peers on this machine, side by side in one run.
 *
 *   1. deploy → first 200: `minipaas deploy examples/hello-node --app NAME` (real CLI, running platform) until
 *      the first 200 through the router, against a bare `node server.js` start until its first 200.
 *   2. kill -9 → first 200: the app's process killed, MiniPaaS (through the router) against pm2 (direct).
 *   3. resident memory with 10 hello-node apps: supervisor + agent + minipaasd against pm2's God daemon.
 *   4. idle cost: CPU time and bytes written per minute by the platform's processes and pm2's daemon, with
 *      --apps idle apps and again with --idle-apps (default 60) on each side.
 *   5. router overhead (optional): wrk direct to the app, through the MiniPaaS router, through Caddy.
 *
 * Run: npx node bench/platform/run.ts [--runs 7] [--apps 10] [--interval-ms 10] [--wrk-seconds 10] [--no-wrk]
 *      [--idle-apps 60] [--idle-seconds 30] [--no-write] [--results FILE]
 * Writes bench/results/platform.json and the "Platform" section of docs/benchmarks.md; with --results FILE only
 * that file (e.g. a before/after run of another checkout with BENCH_PLATFORM_ROOT=DIR).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clockTicks, type IdleWindow, idleWindow } from './idle.ts';
import {
  cmdline,
  type ExecResult,
  freeLowPort,
  log,
  type Mem,
  memOf,
  now,
  percentile,
  pollFirst200,
  ratio,
  run,
  type Summary,
  sleep,
  stopChild,
  summarize,
} from './lib.ts';
import { MiniPaaS, PLATFORM_ROOT, ROOT } from './minipaas.ts';
import { ensurePm2, Pm2 } from './pm2.ts';
import { type Results, type RouterTarget, writeDoc, writeResults } from './report.ts';
import { Caddy, ensureTools, type WrkResult, wrk } from './wrk.ts';

const HELLO_REL = 'examples/hello-node';
const HELLO_DIR = join(ROOT, HELLO_REL);
const HELLO_SCRIPT = join(HELLO_DIR, 'server.js');
/** The agent's default RestartPolicy.stableMs: an instance up this long gets an immediate first restart. */
const STABLE_MS = 10_000;
/** Second crash: the recovered process is killed again this long after its first 200. */
const REPEAT_AFTER_MS = 1500;

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    apps: { type: 'string', default: '10' },
    'interval-ms': { type: 'string', default: '10' },
    'wrk-seconds': { type: 'string', default: '10' },
    'no-wrk': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    'idle-apps': { type: 'string', default: '60' },
    'idle-seconds': { type: 'string', default: '30' },
    results: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(
    'usage: npx node bench/platform/run.ts [--runs 7] [--apps 10] [--interval-ms 10] [--wrk-seconds 10] [--no-wrk] [--idle-apps 60] [--idle-seconds 30] [--no-write] [--results FILE]\n',
  );
  process.exit(0);
}
const RUNS = Number(opts.runs);
const APPS = Number(opts.apps);
const INTERVAL_MS = Number(opts['interval-ms']);
const WRK_SECONDS = Number(opts['wrk-seconds']);
/** Apps on each side for the second idle window (0: no idle phase). */
const IDLE_APPS = Number(opts['idle-apps']);
const IDLE_SECONDS = Number(opts['idle-seconds']);
if (
  !(RUNS >= 1 && APPS >= 2 && INTERVAL_MS >= 1 && WRK_SECONDS >= 1 && IDLE_SECONDS >= 5) ||
  !(IDLE_APPS === 0 || (IDLE_APPS > APPS && IDLE_APPS <= 90))
) {
  process.stderr.write(
    '--runs >= 1, --apps >= 2, --interval-ms >= 1, --wrk-seconds >= 1, --idle-seconds >= 5, --idle-apps 0 or --apps < n <= 90\n',
  );
  process.exit(2);
}

// ---- cleanup, also on Ctrl-C ----
const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        log(`cleanup step failed: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().then(() => process.exit(130));
  });
}

// a hung step must not keep the platform, pm2 or Caddy running: give up after 10 minutes
const watchdog = setTimeout(() => {
  log('the run exceeded 10 minutes: cleaning up and giving up');
  void cleanup().then(() => process.exit(124));
}, 600_000);
watchdog.unref();

// ---- measurements ----
interface DeploySample {
  app: string;
  first200Ms: number;
  cliExitMs: number;
  attempts: number;
  /** Milestones of the deployment record, ms after the CLI was spawned (wall clock, ms precision). */
  phases: DeployPhases;
}
/** When the upload was queued, a build worker started it, and the release was running (ms after spawn). */
interface DeployPhases {
  queuedMs: number;
  buildStartMs: number;
  runningMs: number;
}

async function deployPhases(mp: MiniPaaS, app: string, wallStart: number): Promise<DeployPhases> {
  const { deployments } = await mp.api<{
    deployments: Array<{ createdAt: string; startedAt: string | null; finishedAt: string | null }>;
  }>(`/api/v1/apps/${app}/deployments`);
  const d = deployments[0];
  if (!d?.startedAt || !d.finishedAt) throw new Error(`deployment of ${app} has no start or finish time`);
  const at = (iso: string) => Date.parse(iso) - wallStart;
  return { queuedMs: at(d.createdAt), buildStartMs: at(d.startedAt), runningMs: at(d.finishedAt) };
}
interface BareSample {
  port: number;
  first200Ms: number;
  attempts: number;
}
interface CrashSample {
  name: string;
  killedPid: number;
  newPid: string | undefined;
  firstMs: number;
  repeatKilledPid: number;
  repeatNewPid: string | undefined;
  repeatMs: number;
}

const bareChildren = new Set<ChildProcess>();
cleanups.push(async () => {
  for (const c of bareChildren) await stopChild(c, 'SIGKILL', 2000);
});

async function mpDeploy(mp: MiniPaaS, app: string): Promise<DeploySample> {
  const wallStart = Date.now();
  const start = now();
  const { done } = mp.spawnCli(['deploy', HELLO_REL, '--app', app]);
  let result: ExecResult | undefined;
  let cliExitMs = 0;
  const finished = done.then((r) => {
    result = r;
    cliExitMs = now() - start;
    return r;
  });
  const poll = await pollFirst200(start, {
    port: mp.routerPort,
    host: mp.hostHeader(app),
    intervalMs: INTERVAL_MS,
    timeoutMs: 90_000,
    abort: () =>
      result && result.code !== 0
        ? `minipaas deploy --app ${app} exited ${result.code}:\n${result.stdout}\n${result.stderr}`
        : undefined,
  });
  const r = await finished;
  if (r.code !== 0)
    throw new Error(`minipaas deploy --app ${app} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return {
    app,
    first200Ms: poll.ms,
    cliExitMs,
    attempts: poll.attempts,
    phases: await deployPhases(mp, app, wallStart),
  };
}

async function bareStart(node: string): Promise<BareSample> {
  const port = await freeLowPort();
  const start = now();
  const child = spawn(node, ['server.js'], {
    cwd: HELLO_DIR,
    env: { ...process.env, PORT: String(port) },
    stdio: 'ignore',
  });
  bareChildren.add(child);
  try {
    const poll = await pollFirst200(start, {
      port,
      intervalMs: INTERVAL_MS,
      timeoutMs: 30_000,
      abort: () => (child.exitCode !== null ? `bare node exited ${child.exitCode}` : undefined),
    });
    return { port, first200Ms: poll.ms, attempts: poll.attempts };
  } finally {
    await stopChild(child, 'SIGKILL', 2000);
    bareChildren.delete(child);
  }
}

async function waitUptime(startedAtMs: number, minMs: number): Promise<void> {
  const age = Date.now() - startedAtMs;
  if (age < minMs) await sleep(minMs - age);
}

async function mpCrash(mp: MiniPaaS, app: string): Promise<CrashSample> {
  const inst = await mp.webInstance(app);
  await waitUptime(Date.parse(inst.startedAt ?? ''), STABLE_MS + 1000);
  const host = mp.hostHeader(app);
  const start = now();
  process.kill(inst.pid, 'SIGKILL');
  const first = await pollFirst200(start, {
    port: mp.routerPort,
    host,
    intervalMs: INTERVAL_MS,
    timeoutMs: 30_000,
    notServedBy: inst.pid,
  });
  const recovered = start + first.ms;
  const again = await mp.webInstance(app);
  if (String(again.pid) !== first.servedBy)
    throw new Error(`minipaas ps ${app} shows pid ${again.pid} but pid ${first.servedBy} answered`);
  const wait = REPEAT_AFTER_MS - (now() - recovered);
  if (wait > 0) await sleep(wait);
  const start2 = now();
  process.kill(again.pid, 'SIGKILL');
  const repeat = await pollFirst200(start2, {
    port: mp.routerPort,
    host,
    intervalMs: INTERVAL_MS,
    timeoutMs: 30_000,
    notServedBy: again.pid,
  });
  return {
    name: app,
    killedPid: inst.pid,
    newPid: first.servedBy,
    firstMs: first.ms,
    repeatKilledPid: again.pid,
    repeatNewPid: repeat.servedBy,
    repeatMs: repeat.ms,
  };
}

async function pm2Crash(pm2: Pm2, name: string, startedAtMs: number): Promise<CrashSample> {
  const p = await pm2.proc(name);
  await waitUptime(startedAtMs, STABLE_MS + 1000);
  const start = now();
  process.kill(p.pid, 'SIGKILL');
  const first = await pollFirst200(start, {
    port: p.port,
    intervalMs: INTERVAL_MS,
    timeoutMs: 30_000,
    notServedBy: p.pid,
  });
  const recovered = start + first.ms;
  const again = await pm2.proc(name);
  if (String(again.pid) !== first.servedBy)
    throw new Error(`pm2 jlist shows pid ${again.pid} for ${name} but pid ${first.servedBy} answered`);
  const wait = REPEAT_AFTER_MS - (now() - recovered);
  if (wait > 0) await sleep(wait);
  const start2 = now();
  process.kill(again.pid, 'SIGKILL');
  const repeat = await pollFirst200(start2, {
    port: p.port,
    intervalMs: INTERVAL_MS,
    timeoutMs: 30_000,
    notServedBy: again.pid,
  });
  return {
    name,
    killedPid: p.pid,
    newPid: first.servedBy,
    firstMs: first.ms,
    repeatKilledPid: again.pid,
    repeatNewPid: repeat.servedBy,
    repeatMs: repeat.ms,
  };
}

const appName = (i: number): string => `hello-${i}`;
const round = (x: number): number => Math.round(x * 10) / 10;
const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;

function medianBy<T>(items: readonly T[], f: (t: T) => number): number {
  return percentile(items.map(f), 50);
}

/** The commit of the platform measured (an unpacked tree given as BENCH_PLATFORM_ROOT names it in BENCH_PLATFORM_COMMIT). */
async function gitCommit(): Promise<string> {
  if (PLATFORM_ROOT !== ROOT) return process.env.BENCH_PLATFORM_COMMIT ?? 'unknown';
  const r = await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.trim() : 'unknown';
}

async function main(): Promise<number> {
  const wallStart = Date.now();
  const notes: string[] = [];
  const results: Partial<Results> = {
    benchmark: 'platform',
    date: new Date().toISOString(),
    config: {
      runs: RUNS,
      apps: APPS,
      pollIntervalMs: INTERVAL_MS,
      stableMs: STABLE_MS,
      repeatCrashAfterMs: REPEAT_AFTER_MS,
      wrk: opts['no-wrk'] ? null : { durationS: WRK_SECONDS, threads: 2, connections: 50 },
      idle: IDLE_APPS ? { apps: [APPS, IDLE_APPS], seconds: IDLE_SECONDS } : null,
      platformRoot: PLATFORM_ROOT === ROOT ? null : PLATFORM_ROOT,
    },
    notes,
  };
  let failed: Error | null = null;
  try {
    results.machine = {
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      totalMemGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
      appNode: null,
      loadavgStart: loadavg().map(round),
      loadavgEnd: [],
      gitCommit: await gitCommit(),
    };
    const pm2Version = await ensurePm2();
    results.versions = { pm2: pm2Version, caddy: null, wrk: null };

    log('starting MiniPaaS (minipaas up)');
    const mp = new MiniPaaS();
    cleanups.push(() => mp.stop());
    const t = now();
    await mp.start();
    results.platformStartMs = Math.round(now() - t);
    log(`MiniPaaS ready in ${results.platformStartMs} ms (api :${mp.apiPort}, router :${mp.routerPort})`);
    // Again on the same home: what every start after the first costs (no initdb, compile caches warm).
    const t2 = now();
    await mp.restart();
    results.platformRestartMs = Math.round(now() - t2);
    log(`MiniPaaS ready again on its existing home in ${results.platformRestartMs} ms`);

    const pm2 = new Pm2();
    cleanups.push(() => pm2.stop());
    await pm2.init();

    const cores = cpus().length;
    if ((loadavg()[0] ?? 0) > cores)
      notes.push(
        `the machine was busy at the start (1-min load ${round(loadavg()[0] ?? 0)} on ${cores} cores)`,
      );
    const phaseLoad: Record<string, number[]> = {};
    results.phaseLoad = phaseLoad;
    const mark = (phase: string): void => {
      phaseLoad[phase] = loadavg().map(round);
    };

    // ---- 1. deploy → first 200 ----
    mark('deploy');
    log('warm-up: one MiniPaaS deploy and one bare start (not counted)');
    const warmDeploy = await mpDeploy(mp, appName(0));
    const warmInst = await mp.webInstance(appName(0));
    const appNode = readlinkSync(`/proc/${warmInst.pid}/exe`);
    const appNodeVersion = (await run(appNode, ['--version'], { timeoutMs: 10_000 })).stdout.trim();
    results.machine.appNode = { path: appNode, version: appNodeVersion };
    log(`MiniPaaS runs the app with ${appNode} (${appNodeVersion}); bare node and pm2 use the same binary`);
    const warmBare = await bareStart(appNode);
    // the CLI's own floor: Node start + loading the CLI, no platform work
    const cliFloor: number[] = [];
    for (let k = 0; k < 3; k++) {
      const t = now();
      const r = await mp.cli(['--version'], 30_000);
      if (r.code !== 0) throw new Error(`minipaas --version exited ${r.code}: ${r.stderr}`);
      cliFloor.push(now() - t);
    }
    const deploySamples: Array<{ order: string; minipaas: DeploySample; bare: BareSample }> = [];
    for (let i = 1; i <= RUNS; i++) {
      const mpFirst = i % 2 === 1;
      let m: DeploySample | undefined;
      let b: BareSample | undefined;
      for (const which of mpFirst ? ['mp', 'bare'] : ['bare', 'mp']) {
        if (which === 'mp') m = await mpDeploy(mp, appName(i));
        else b = await bareStart(appNode);
        await sleep(300);
      }
      if (!m || !b) throw new Error('unreachable');
      deploySamples.push({ order: mpFirst ? 'minipaas,bare' : 'bare,minipaas', minipaas: m, bare: b });
      log(
        `deploy ${i}/${RUNS}: MiniPaaS ${round(m.first200Ms)} ms (CLI exit ${round(m.cliExitMs)} ms), bare node ${round(b.first200Ms)} ms`,
      );
    }
    const dm = summarize(deploySamples.map((s) => s.minipaas.first200Ms));
    const db = summarize(deploySamples.map((s) => s.bare.first200Ms));
    results.deploy = {
      warmup: { minipaas: warmDeploy, bare: warmBare },
      samples: deploySamples,
      summary: {
        minipaas: dm,
        bare: db,
        minipaasCliExit: summarize(deploySamples.map((s) => s.minipaas.cliExitMs)),
        phases: {
          queued: summarize(deploySamples.map((s) => s.minipaas.phases.queuedMs)),
          waiting: summarize(
            deploySamples.map((s) => s.minipaas.phases.buildStartMs - s.minipaas.phases.queuedMs),
          ),
          buildAndRollout: summarize(
            deploySamples.map((s) => s.minipaas.phases.runningMs - s.minipaas.phases.buildStartMs),
          ),
          runningToFirst200: summarize(
            deploySamples.map((s) => s.minipaas.first200Ms - s.minipaas.phases.runningMs),
          ),
        },
        cliVersionMs: summarize(cliFloor),
        ratioMedian: ratio(dm.median, db.median),
        ratioP90: ratio(dm.p90, db.p90),
      },
    };

    // ---- fill up to APPS MiniPaaS apps, start the same number under pm2 ----
    const deployed = RUNS + 1;
    for (let i = deployed; i < APPS; i++) {
      const r = await mp.cli(['deploy', HELLO_REL, '--app', appName(i)]);
      if (r.code !== 0) throw new Error(`minipaas deploy --app ${appName(i)} exited ${r.code}: ${r.stderr}`);
    }
    for (let i = APPS; i < deployed; i++) {
      const r = await mp.cli(['apps', 'destroy', appName(i), '--confirm', appName(i)]);
      if (r.code !== 0) throw new Error(`minipaas apps destroy ${appName(i)} exited ${r.code}: ${r.stderr}`);
    }
    log(`${APPS} apps on MiniPaaS; starting ${APPS} under pm2 (PM2_HOME ${pm2.home})`);
    const pm2Started = new Map<string, number>();
    for (let i = 0; i < APPS; i++) {
      const port = await freeLowPort();
      await pm2.start(HELLO_SCRIPT, appName(i), port, appNode);
      pm2Started.set(appName(i), Date.now());
    }
    for (let i = 0; i < APPS; i++) {
      const p = await pm2.proc(appName(i));
      await pollFirst200(now(), { port: p.port, intervalMs: 50, timeoutMs: 15_000 });
    }

    mark('memory');
    // ---- 3. memory (before the crash tests, so every process is in its first life) ----
    // The build worker runs only while there are builds (it exits 30 s after the last one): its own
    // memory is noted while it lives, and the platform is sampled once it is gone, as an idle platform is.
    const workerMem = mp.buildWorkerPids().map((pid) => memOf(pid));
    const buildWorkerMiB = workerMem.length
      ? round(workerMem.reduce((t, m) => t + (m.pssKiB ?? m.rssKiB), 0) / 1024)
      : null;
    const workerWaitStart = Date.now();
    while (mp.buildWorkerPids().length > 0 && Date.now() - workerWaitStart < 60_000) await sleep(1000);
    log(
      `memory: build worker ${buildWorkerMiB === null ? 'not running' : `${buildWorkerMiB} MiB PSS while alive`}; ${mp.buildWorkerPids().length ? 'still running' : 'exited'} after ${round((Date.now() - workerWaitStart) / 1000)} s`,
    );
    log('memory: settling 5 s, then 5 samples 1 s apart');
    await sleep(5000);
    const platform = mp.platformPids();
    // any other process of the platform (the embedded PostgreSQL server and its workers), summed as one
    const otherPids = Object.entries(mp.platformProcesses())
      .filter(([k]) => !(k in platform))
      .map(([, pid]) => pid);
    const otherNames = [
      ...new Set(
        otherPids.map((pid) => (cmdline(pid).split(' ')[0] ?? '').split('/').pop()?.replace(/:$/, '') ?? '?'),
      ),
    ];
    const memSum = (ms: Mem[]): Mem => ({
      rssKiB: ms.reduce((t, m) => t + m.rssKiB, 0),
      pssKiB: ms.reduce((t, m) => t + (m.pssKiB ?? 0), 0),
      anonKiB: ms.reduce((t, m) => t + (m.anonKiB ?? 0), 0),
    });
    // A PostgreSQL backend exits when its client closes an idle connection: counted while it lives.
    const memOfLive = (pid: number): Mem[] => {
      try {
        return [memOf(pid)];
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
    };
    const mpApps: number[] = [];
    for (let i = 0; i < APPS; i++) mpApps.push((await mp.webInstance(appName(i))).pid);
    const pm2Daemon = pm2.daemonPid();
    const pm2Apps = (await pm2.jlist()).map((p) => p.pid);
    if (pm2Apps.length !== APPS) throw new Error(`pm2 runs ${pm2Apps.length} apps, expected ${APPS}`);
    const memSamples: Array<{
      supervisor: Mem;
      agent: Mem;
      minipaasd: Mem;
      /** The platform's other processes (e.g. the database server), summed. */
      others: Mem;
      minipaasApps: Mem[];
      pm2Daemon: Mem;
      pm2Apps: Mem[];
    }> = [];
    for (let s = 0; s < 5; s++) {
      if (s) await sleep(1000);
      memSamples.push({
        supervisor: memOf(platform.supervisor),
        agent: memOf(platform.agent),
        minipaasd: memOf(platform.minipaasd),
        others: memSum(otherPids.flatMap(memOfLive)),
        minipaasApps: mpApps.map(memOf),
        pm2Daemon: memOf(pm2Daemon),
        pm2Apps: pm2Apps.map(memOf),
      });
    }
    const sum = (ms: Mem[]): number => ms.reduce((a, m) => a + m.rssKiB, 0);
    const mem = {
      supervisorMiB: mib(medianBy(memSamples, (s) => s.supervisor.rssKiB)),
      agentMiB: mib(medianBy(memSamples, (s) => s.agent.rssKiB)),
      minipaasdMiB: mib(medianBy(memSamples, (s) => s.minipaasd.rssKiB)),
      othersMiB: mib(medianBy(memSamples, (s) => s.others.rssKiB)),
      otherProcesses: { count: otherPids.length, names: otherNames },
      platformMiB: mib(
        medianBy(
          memSamples,
          (s) => s.supervisor.rssKiB + s.agent.rssKiB + s.minipaasd.rssKiB + s.others.rssKiB,
        ),
      ),
      pm2DaemonMiB: mib(medianBy(memSamples, (s) => s.pm2Daemon.rssKiB)),
      minipaasAppsMiB: mib(medianBy(memSamples, (s) => sum(s.minipaasApps))),
      pm2AppsMiB: mib(medianBy(memSamples, (s) => sum(s.pm2Apps))),
      platformPssMiB: mib(
        medianBy(
          memSamples,
          (s) =>
            (s.supervisor.pssKiB ?? 0) +
            (s.agent.pssKiB ?? 0) +
            (s.minipaasd.pssKiB ?? 0) +
            (s.others.pssKiB ?? 0),
        ),
      ),
      pm2DaemonPssMiB: mib(medianBy(memSamples, (s) => s.pm2Daemon.pssKiB ?? 0)),
      platformAnonMiB: mib(
        medianBy(
          memSamples,
          (s) =>
            (s.supervisor.anonKiB ?? 0) +
            (s.agent.anonKiB ?? 0) +
            (s.minipaasd.anonKiB ?? 0) +
            (s.others.anonKiB ?? 0),
        ),
      ),
      pm2DaemonAnonMiB: mib(medianBy(memSamples, (s) => s.pm2Daemon.anonKiB ?? 0)),
      perProcess: Object.fromEntries(
        (['supervisor', 'agent', 'minipaasd', 'others', 'pm2Daemon'] as const).map((k) => [
          k,
          {
            rssMiB: mib(medianBy(memSamples, (s) => s[k].rssKiB)),
            pssMiB: mib(medianBy(memSamples, (s) => s[k].pssKiB ?? 0)),
            anonMiB: mib(medianBy(memSamples, (s) => s[k].anonKiB ?? 0)),
          },
        ]),
      ),
    };
    results.memory = {
      pids: { ...platform, minipaasApps: mpApps, pm2Daemon, pm2Apps },
      samples: memSamples,
      summary: {
        ...mem,
        buildWorkerMiB,
        overheadRatio: ratio(mem.platformMiB, mem.pm2DaemonMiB),
        agentOnlyRatio: ratio(mem.agentMiB, mem.pm2DaemonMiB),
        appsRatio: ratio(mem.minipaasAppsMiB, mem.pm2AppsMiB),
      },
    };
    log(
      `memory: MiniPaaS platform ${mem.platformMiB} MiB (supervisor ${mem.supervisorMiB}, agent ${mem.agentMiB}, minipaasd ${mem.minipaasdMiB}, ${otherPids.length} other processes ${mem.othersMiB}) vs pm2 daemon ${mem.pm2DaemonMiB} MiB; apps ${mem.minipaasAppsMiB} vs ${mem.pm2AppsMiB} MiB`,
    );

    // ---- 2. kill -9 → first 200 ----
    mark('crash');
    const crashSamples: Array<{ order: string; minipaas: CrashSample; pm2: CrashSample }> = [];
    for (let i = 1; i <= RUNS; i++) {
      const app = appName(1 + ((i - 1) % (APPS - 1)));
      const mpFirst = i % 2 === 1;
      let m: CrashSample | undefined;
      let p: CrashSample | undefined;
      for (const which of mpFirst ? ['mp', 'pm2'] : ['pm2', 'mp']) {
        if (which === 'mp') m = await mpCrash(mp, app);
        else {
          p = await pm2Crash(pm2, app, pm2Started.get(app) ?? 0);
          pm2Started.set(app, Date.now());
        }
        await sleep(300);
      }
      if (!m || !p) throw new Error('unreachable');
      crashSamples.push({ order: mpFirst ? 'minipaas,pm2' : 'pm2,minipaas', minipaas: m, pm2: p });
      log(
        `crash ${i}/${RUNS} (${app}): first kill MiniPaaS ${round(m.firstMs)} ms vs pm2 ${round(p.firstMs)} ms; second kill ${REPEAT_AFTER_MS} ms later MiniPaaS ${round(m.repeatMs)} ms vs pm2 ${round(p.repeatMs)} ms`,
      );
    }
    const cmf = summarize(crashSamples.map((s) => s.minipaas.firstMs));
    const cpf = summarize(crashSamples.map((s) => s.pm2.firstMs));
    const cmr = summarize(crashSamples.map((s) => s.minipaas.repeatMs));
    const cpr = summarize(crashSamples.map((s) => s.pm2.repeatMs));
    results.crash = {
      samples: crashSamples,
      summary: {
        first: {
          minipaas: cmf,
          pm2: cpf,
          ratioMedian: ratio(cmf.median, cpf.median),
          ratioP90: ratio(cmf.p90, cpf.p90),
        },
        repeat: {
          minipaas: cmr,
          pm2: cpr,
          ratioMedian: ratio(cmr.median, cpr.median),
          ratioP90: ratio(cmr.p90, cpr.p90),
        },
      },
    };

    // ---- 4. idle cost with APPS, then IDLE_APPS apps on each side ----
    if (IDLE_APPS > 0) {
      mark('idle');
      const clk = await clockTicks();
      const windows: IdleWindow[] = [];
      const measure = async (n: number): Promise<void> => {
        // The build worker exits 30 s after the last build; a window measures the idle platform without it
        // (and a process that exits mid-window has no counters to subtract).
        const waitStart = Date.now();
        while (mp.buildWorkerPids().length > 0 && Date.now() - waitStart < 60_000) await sleep(1000);
        log(`idle: ${n} apps on each side, settling 10 s, then a ${IDLE_SECONDS} s window`);
        await sleep(10_000);
        const w = await idleWindow(n, mp.platformProcesses(), pm2.daemonPid(), IDLE_SECONDS, clk);
        windows.push(w);
        log(
          `idle with ${n} apps, per minute: MiniPaaS ${w.minipaas.cpuMsPerMin} ms CPU, ${w.minipaas.wcharKiBPerMin} KiB written (wchar), ${w.minipaas.writeKiBPerMin} KiB to disk; pm2 daemon ${w.pm2.cpuMsPerMin} ms CPU, ${w.pm2.wcharKiBPerMin} KiB, ${w.pm2.writeKiBPerMin} KiB`,
        );
      };
      await measure(APPS);
      log(`idle: adding apps up to ${IDLE_APPS} on each side`);
      for (let i = APPS; i < IDLE_APPS; i++) {
        const r = await mp.cli(['deploy', HELLO_REL, '--app', appName(i)]);
        if (r.code !== 0)
          throw new Error(`minipaas deploy --app ${appName(i)} exited ${r.code}: ${r.stderr}`);
        await pm2.start(HELLO_SCRIPT, appName(i), await freeLowPort(), appNode);
      }
      for (const i of [APPS, IDLE_APPS - 1]) {
        await mp.webInstance(appName(i));
        const p = await pm2.proc(appName(i));
        await pollFirst200(now(), { port: p.port, intervalMs: 50, timeoutMs: 15_000 });
      }
      await measure(IDLE_APPS);
      const [a, b] = windows as [IdleWindow, IdleWindow];
      const g = (x: number, y: number): number => ratio(y, x);
      results.idle = {
        clockTicks: clk,
        windows,
        summary: {
          apps: [APPS, IDLE_APPS],
          appsRatio: ratio(IDLE_APPS, APPS),
          minipaasCpuGrowth: g(a.minipaas.cpuMsPerMin, b.minipaas.cpuMsPerMin),
          minipaasWcharGrowth: g(a.minipaas.wcharKiBPerMin, b.minipaas.wcharKiBPerMin),
          minipaasWriteGrowth: g(a.minipaas.writeKiBPerMin, b.minipaas.writeKiBPerMin),
          pm2CpuGrowth: g(a.pm2.cpuMsPerMin, b.pm2.cpuMsPerMin),
        },
      };
    } else {
      results.idle = { skipped: 'skipped with --idle-apps 0' };
    }

    // ---- 5. router overhead ----
    mark('router');
    if (opts['no-wrk']) {
      results.router = { skipped: 'skipped with --no-wrk' };
    } else {
      const tools = await ensureTools();
      if (!('wrk' in tools)) {
        results.router = { skipped: tools.note };
        notes.push(tools.note);
      } else {
        if (tools.note) notes.push(tools.note);
        const caddy = new Caddy(tools.caddy);
        cleanups.push(() => caddy.stop());
        results.versions.caddy = await caddy.version();
        const wv = await run(tools.wrk, ['--version'], { timeoutMs: 10_000 });
        results.versions.wrk = `${wv.stdout}${wv.stderr}`.split('\n')[0]?.trim().split(' ')[1] ?? 'unknown';
        const target = await mp.webInstance(appName(1));
        await caddy.start(target.port);
        const w = { durationS: WRK_SECONDS, threads: 2, connections: 50 };
        const warm = { ...w, durationS: 2 };
        const targets: Array<[string, string, string | undefined]> = [
          ['direct', `http://127.0.0.1:${target.port}/`, undefined],
          ['minipaas-router', `http://127.0.0.1:${mp.routerPort}/`, mp.hostHeader(appName(1))],
          ['caddy', `http://127.0.0.1:${caddy.port}/`, undefined],
        ];
        // two rounds in mirrored order (A B C, then C B A) so drift on a shared machine hits every target alike
        const out: Array<WrkResult & { round: number }> = [];
        const order = [...targets, ...[...targets].reverse()];
        for (const [k, [name, url, host]] of order.entries()) {
          const round = k < targets.length ? 1 : 2;
          log(
            `wrk ${name} (round ${round}): ${url}${host ? ` (Host ${host})` : ''}, ${WRK_SECONDS} s after 2 s warm-up`,
          );
          await wrk(name, url, host, warm, tools.wrk);
          const r = { ...(await wrk(name, url, host, w, tools.wrk)), round };
          log(
            `  ${r.requestsPerSec} req/s, p50 ${r.latencyP50Ms} ms, p99 ${r.latencyP99Ms} ms, non-2xx ${r.non2xx}`,
          );
          out.push(r);
        }
        await caddy.stop();
        const mean = (xs: number[]): number =>
          Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 100) / 100;
        const per = targets.map(([name]) => {
          const rs = out.filter((r) => r.target === name);
          return {
            target: name,
            requestsPerSec: Math.round(mean(rs.map((r) => r.requestsPerSec))),
            latencyP50Ms: mean(rs.map((r) => r.latencyP50Ms)),
            latencyP99Ms: mean(rs.map((r) => r.latencyP99Ms)),
            rpsRounds: rs.map((r) => r.requestsPerSec),
            p99Rounds: rs.map((r) => r.latencyP99Ms),
            non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
            socketErrors: rs.map((r) => r.socketErrors).filter((e): e is string => e !== null),
          };
        });
        const get = (n: string): RouterTarget => per.find((r) => r.target === n) as RouterTarget;
        results.router = {
          results: out,
          targets: per,
          summary: {
            routerVsDirectRps: ratio(get('minipaas-router').requestsPerSec, get('direct').requestsPerSec),
            caddyVsDirectRps: ratio(get('caddy').requestsPerSec, get('direct').requestsPerSec),
            routerVsCaddyRps: ratio(get('minipaas-router').requestsPerSec, get('caddy').requestsPerSec),
            routerVsCaddyP99: ratio(get('minipaas-router').latencyP99Ms, get('caddy').latencyP99Ms),
          },
        };
      }
    }
  } catch (err) {
    failed = err as Error;
    results.error = failed.message;
    log(`FAILED: ${failed.stack ?? failed.message}`);
  } finally {
    const c = now();
    await cleanup();
    results.cleanupMs = Math.round(now() - c);
  }
  if (results.machine) results.machine.loadavgEnd = loadavg().map(round);
  results.durationS = Math.round((Date.now() - wallStart) / 1000);
  log(`run took ${results.durationS} s`);
  if (opts['no-write']) {
    process.stdout.write(
      `${JSON.stringify({ ...results, memory: { summary: results.memory?.summary } }, null, 2)}\n`,
    );
  } else if (opts.results) {
    const file = await writeResults(results, opts.results);
    log(`wrote ${file} (docs/benchmarks.md untouched)`);
  } else {
    const file = await writeResults(results);
    log(`wrote ${file}`);
    if (!failed) {
      const doc = await writeDoc(results as Results);
      log(`updated the Platform section of ${doc}`);
    }
  }
  return failed ? 1 : 0;
}

export type { BareSample, CrashSample, DeploySample, Summary };

process.exitCode = await main();
