/** bench/results/platform.json and the "Platform" section of docs/benchmarks.md. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { IdleWindow } from './idle.ts';
import type { Summary } from './lib.ts';
import { ROOT } from './minipaas.ts';
import type { WrkResult } from './wrk.ts';

export interface Results {
  benchmark: 'platform';
  date: string;
  durationS: number;
  cleanupMs: number;
  platformStartMs: number;
  /** `minipaas up` to ready again on the same home (absent in runs before it was measured). */
  platformRestartMs?: number;
  /** loadavg (1, 5, 15 min) at the start of each phase. */
  phaseLoad: Record<string, number[]>;
  error?: string;
  notes: string[];
  config: {
    runs: number;
    apps: number;
    pollIntervalMs: number;
    stableMs: number;
    repeatCrashAfterMs: number;
    wrk: { durationS: number; threads: number; connections: number } | null;
    /** The two idle windows: apps on each side, and the window length. */
    idle?: { apps: number[]; seconds: number } | null;
    /** The checkout measured when it is not this one (BENCH_PLATFORM_ROOT). */
    platformRoot?: string | null;
  };
  machine: {
    cpuModel: string;
    cores: number;
    totalMemGiB: number;
    kernel: string;
    node: string;
    appNode: { path: string; version: string } | null;
    loadavgStart: number[];
    loadavgEnd: number[];
    gitCommit: string;
  };
  versions: { pm2: string; caddy: string | null; wrk: string | null };
  deploy: {
    warmup: unknown;
    samples: unknown[];
    summary: {
      minipaas: Summary;
      bare: Summary;
      minipaasCliExit: Summary;
      /**
       * Where the time goes (medians of each phase over the samples): CLI start + pack + upload until the
       * deployment is queued, queued until a build worker starts it, build + release + rollout until it is
       * running, running until the first 200 through the router. Absent in results of older runs.
       */
      phases?: { queued: Summary; waiting: Summary; buildAndRollout: Summary; runningToFirst200: Summary };
      /** `minipaas --version`: the CLI's start-up floor. */
      cliVersionMs: Summary;
      ratioMedian: number;
      ratioP90: number;
    };
  };
  crash: {
    samples: unknown[];
    summary: Record<
      'first' | 'repeat',
      { minipaas: Summary; pm2: Summary; ratioMedian: number; ratioP90: number }
    >;
  };
  memory: {
    pids: unknown;
    samples: unknown[];
    summary: {
      supervisorMiB: number;
      agentMiB: number;
      minipaasdMiB: number;
      platformMiB: number;
      pm2DaemonMiB: number;
      minipaasAppsMiB: number;
      pm2AppsMiB: number;
      platformPssMiB: number;
      pm2DaemonPssMiB: number;
      platformAnonMiB?: number;
      /** The platform's processes other than supervisor, agent and minipaasd (e.g. PostgreSQL), summed. */
      othersMiB?: number;
      otherProcesses?: { count: number; names: string[] };
      pm2DaemonAnonMiB?: number;
      perProcess?: Record<string, { rssMiB: number; pssMiB: number; anonMiB: number }>;
      overheadRatio: number;
      agentOnlyRatio: number;
      appsRatio: number;
      /** PSS of the build worker while it was alive after the deploys (null: not running); sampled after it exited. */
      buildWorkerMiB?: number | null;
    };
  };
  idle?:
    | { skipped: string }
    | {
        clockTicks: number;
        windows: IdleWindow[];
        summary: {
          apps: number[];
          appsRatio: number;
          minipaasCpuGrowth: number;
          minipaasWcharGrowth: number;
          minipaasWriteGrowth: number;
          pm2CpuGrowth: number;
        };
      };
  router:
    | { skipped: string }
    | {
        results: Array<WrkResult & { round: number }>;
        targets: RouterTarget[];
        summary: {
          routerVsDirectRps: number;
          caddyVsDirectRps: number;
          routerVsCaddyRps: number;
          routerVsCaddyP99: number;
        };
      };
}

/** One wrk target over both rounds: means of the rounds, and each round's value. */
export interface RouterTarget {
  target: string;
  requestsPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  rpsRounds: number[];
  p99Rounds: number[];
  non2xx: number;
  socketErrors: string[];
}

export const RESULTS_FILE = join(ROOT, 'bench', 'results', 'platform.json');
export const DOC_FILE = join(ROOT, 'docs', 'benchmarks.md');

export async function writeResults(r: Partial<Results>, file = RESULTS_FILE): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(r, null, 2)}\n`);
  return file;
}

const ms = (x: number): string => `${Math.round(x)} ms`;
const x = (r: number): string => `${r.toFixed(2)}×`;

/** MiB (2^20 bytes, as the bench measures) in MB (10^6 bytes, as targets are written), one decimal. */
const mb = (mib: number): number => Math.round(mib * 1.048576 * 10) / 10;

export function platformSection(r: Results): string {
  const d = r.deploy.summary;
  const c = r.crash.summary;
  const m = r.memory.summary;
  const cfg = r.config;
  const L: string[] = [];
  L.push('## Platform');
  L.push('');
  L.push(
    `MiniPaaS against its peers, side by side in one run of \`bench/platform/run.ts\` (${r.date.slice(0, 10)}, ` +
      `${r.machine.cpuModel}, ${r.machine.cores} cores, ${r.machine.totalMemGiB} GiB, Linux ${r.machine.kernel}, ` +
      `harness and platform on Node ${r.machine.node}, apps on ${r.machine.appNode?.version ?? '?'}, commit ` +
      `${r.machine.gitCommit}; 1-min load average at the start of each phase: ${Object.entries(r.phaseLoad)
        .map(([k, v]) => `${k} ${v[0]}`)
        .join(', ')}). These machines ` +
      'are shared and noisy: compare the ratios, not the absolute times. Raw samples: ' +
      '[bench/results/platform.json](../bench/results/platform.json).',
  );
  L.push('');
  L.push(`| measurement (n = ${cfg.runs}) | MiniPaaS | peer | MiniPaaS / peer |`);
  L.push('| --- | --- | --- | --- |');
  L.push(
    `| deploy → first 200, median (p90) | ${ms(d.minipaas.median)} (${ms(d.minipaas.p90)}) | bare \`node server.js\`: ${ms(d.bare.median)} (${ms(d.bare.p90)}) | ${x(d.ratioMedian)} (p90 ${x(d.ratioP90)}) |`,
  );
  if (d.phases)
    L.push(
      `| … of which: CLI start, pack, upload → queued · queued → build started · build, release, rollout → running · running → first 200 (medians) | ${ms(d.phases.queued.median)} · ${ms(d.phases.waiting.median)} · ${ms(d.phases.buildAndRollout.median)} · ${ms(d.phases.runningToFirst200.median)} | \`minipaas --version\` alone: ${ms(d.cliVersionMs.median)} | |`,
    );
  L.push(
    `| \`kill -9\` → first 200, first crash, median (p90) | ${ms(c.first.minipaas.median)} (${ms(c.first.minipaas.p90)}) | pm2: ${ms(c.first.pm2.median)} (${ms(c.first.pm2.p90)}) | ${x(c.first.ratioMedian)} (p90 ${x(c.first.ratioP90)}) |`,
  );
  L.push(
    `| \`kill -9\` again ${(cfg.repeatCrashAfterMs / 1000).toFixed(1)} s after recovery, median (p90) | ${ms(c.repeat.minipaas.median)} (${ms(c.repeat.minipaas.p90)}) | pm2: ${ms(c.repeat.pm2.median)} (${ms(c.repeat.pm2.p90)}) | ${x(c.repeat.ratioMedian)} (p90 ${x(c.repeat.ratioP90)}) |`,
  );
  L.push(
    `| platform RSS with ${cfg.apps} apps | ${m.platformMiB} MiB (supervisor ${m.supervisorMiB} + agent ${m.agentMiB} + minipaasd ${m.minipaasdMiB}${m.otherProcesses?.count ? ` + ${m.otherProcesses.names.join(', ')} ×${m.otherProcesses.count} ${m.othersMiB}` : ''}) | pm2 God daemon: ${m.pm2DaemonMiB} MiB | ${x(m.overheadRatio)} (agent alone ${x(m.agentOnlyRatio)}) |`,
  );
  if (m.buildWorkerMiB)
    L.push(
      `| build worker while building (PSS; exits 30 s after the last build, not in the row above) | ${m.buildWorkerMiB} MiB | pm2 has none | |`,
    );
  L.push(
    `| the ${cfg.apps} app processes' RSS (sum) | ${m.minipaasAppsMiB} MiB | pm2: ${m.pm2AppsMiB} MiB | ${x(m.appsRatio)} |`,
  );
  L.push('');
  L.push(
    `Deploy: the real CLI's \`minipaas deploy examples/hello-node --app hello-N\` on a running platform (new app ` +
      `name each time) is timed from spawning the CLI to the first 200 through the router (\`Host: hello-N.localhost\`); ` +
      `the CLI itself exits after a median of ${ms(d.minipaasCliExit.median)}. It includes the CLI's Node start ` +
      `(\`minipaas --version\` alone takes ${ms(d.cliVersionMs.median)}), packing ` +
      'and upload, release creation, spawn, the health check and the route switch. The bare start is ' +
      '`node server.js` with the same Node binary the agent uses. Both are polled with the same loop: one GET on a ' +
      `new connection, then ${cfg.pollIntervalMs} ms pause. The two alternate (A,B then B,A), after one uncounted ` +
      `warm-up each. Platform start (\`minipaas up\` to ready, not counted) took ${ms(r.platformStartMs)} on a fresh home (initdb of the embedded PostgreSQL server included)${r.platformRestartMs === undefined ? '' : ` and ${ms(r.platformRestartMs)} again on the same home`}.`,
  );
  L.push('');
  L.push(
    `Crash: \`kill -9\` of the pid from \`minipaas ps hello-N --json\` (polled through the router) and of the pid from ` +
      '`pm2 jlist` (polled directly on its port), timed to the first 200 served by a new pid (`x-served-by`). ' +
      `Each app is up for more than ${cfg.stableMs / 1000} s before the first kill, so MiniPaaS restarts it ` +
      `immediately (backoff 0, 250, 500, 1000 ms … for consecutive crashes of an instance up less than ` +
      `${cfg.stableMs / 1000} s); the second kill, ${(cfg.repeatCrashAfterMs / 1000).toFixed(1)} s after recovery, ` +
      `shows that backoff. pm2 runs with its defaults: \`restart_delay\` 0, no \`exp_backoff_restart_delay\`, ` +
      `\`min_uptime\` 1 s, \`max_restarts\` 16, fork mode (pm2 ${r.versions.pm2}, own \`PM2_HOME\` in a temp dir). ` +
      'pm2 has no health check: the new process answers as soon as it listens. The MiniPaaS router sends ' +
      'traffic to a restarted instance once a health probe has reached its port (every 10 ms for the first ' +
      'second after spawn, then backing off to 100 ms); pm2 routes nothing, so its time is only the respawn.',
  );
  L.push('');
  L.push(
    `Memory: \`VmRSS\` from \`/proc/<pid>/status\`, median of 5 samples 1 s apart after 5 s idle, with ${cfg.apps} ` +
      `hello-node apps on each side. ${
        m.otherProcesses?.count
          ? `The platform's database is the embedded PostgreSQL server (${m.otherProcesses.count} processes, counted in the platform); `
          : 'minipaasd includes its database (PGlite, Postgres compiled to WASM, or a client of an external server); '
      }` +
      `the agent alone (process supervisor + router) is the part that plays pm2's role. PSS (shared pages split): ` +
      `MiniPaaS platform ${m.platformPssMiB} MiB (${mb(m.platformPssMiB)} MB; issue 7's target is 150 MB), pm2 daemon ${m.pm2DaemonPssMiB} MiB. The app processes are the same ` +
      "`node server.js` either way (pm2's sit inside its ProcessContainerFork wrapper; MiniPaaS's run as `nobody` " +
      'when the agent runs as root).',
  );
  L.push('');
  if (m.perProcess) {
    const pp = m.perProcess;
    const row = (k: string, label: string): string => {
      const v = pp[k];
      return v ? `| ${label} | ${v.rssMiB} | ${v.pssMiB} | ${v.anonMiB} |` : '';
    };
    L.push(`Per process with ${cfg.apps} apps (MiB, median of the 5 samples):`);
    L.push('');
    L.push('| process | RSS | PSS | RssAnon (own memory) |');
    L.push('| --- | ---: | ---: | ---: |');
    L.push(row('supervisor', '`minipaas up` (supervisor)'));
    L.push(row('agent', 'agent (supervisor of apps + router)'));
    L.push(row('minipaasd', 'minipaasd'));
    if (m.otherProcesses?.count)
      L.push(
        row('others', `${m.otherProcesses.names.join(', ')} (${m.otherProcesses.count} processes, summed)`),
      );
    L.push(row('pm2Daemon', 'pm2 God daemon'));
    L.push('');
    L.push(
      'RSS counts the pages of the node binary each process has touched (~45 MiB for an empty `node`), which ' +
        'all Node processes on the machine share (the apps too); PSS splits shared pages between the processes ' +
        'that map them; RssAnon is what the process holds alone (V8 heap, stacks, malloc).',
    );
    L.push('');
  }
  if (r.idle && !('skipped' in r.idle)) L.push(...idleSection(r));
  L.push('### Router overhead');
  L.push('');
  if ('skipped' in r.router) {
    L.push(`Not measured in this run: ${r.router.skipped}.`);
  } else {
    const w = cfg.wrk;
    const direct = r.router.targets.find((y) => y.target === 'direct');
    L.push(
      `\`wrk -t${w?.threads} -c${w?.connections} -d${w?.durationS}s --latency\` against one hello-node instance, two ` +
        'rounds in mirrored order (direct, router, Caddy, then Caddy, router, direct), each after a 2 s warm-up; ' +
        `the table shows the mean of the two rounds (each round in brackets). wrk ${r.versions.wrk}, Caddy ` +
        `${r.versions.caddy} (\`caddy run --config\` with a single \`reverse_proxy\`, admin API off, defaults ` +
        'otherwise). wrk, the proxy and the app share the same 2 cores, so a proxy mostly costs CPU the app would ' +
        'otherwise get.',
    );
    L.push('');
    L.push('| target | req/s | p50 | p99 | req/s vs direct | non-2xx |');
    L.push('| --- | --- | --- | --- | --- | --- |');
    const label: Record<string, string> = {
      direct: 'app directly',
      'minipaas-router': 'MiniPaaS router (`Host: hello-1.localhost`)',
      caddy: 'Caddy reverse_proxy',
    };
    for (const y of r.router.targets) {
      const rel = direct ? x(y.requestsPerSec / direct.requestsPerSec) : '-';
      L.push(
        `| ${label[y.target] ?? y.target} | ${y.requestsPerSec} (${y.rpsRounds.join(', ')}) | ${y.latencyP50Ms} ms | ${y.latencyP99Ms} ms (${y.p99Rounds.join(', ')}) | ${rel} | ${y.non2xx}${y.socketErrors.length ? ` (socket errors: ${y.socketErrors.join('; ')})` : ''} |`,
      );
    }
    L.push('');
    L.push(
      `MiniPaaS router vs Caddy: ${x(r.router.summary.routerVsCaddyRps)} the requests per second, ` +
        `${x(r.router.summary.routerVsCaddyP99)} the p99 latency.`,
    );
  }
  L.push('');
  L.push('### Reproduce');
  L.push('');
  L.push('```bash');
  L.push('npm install                                  # once: Node 24 comes with the devDependencies');
  L.push(
    'apt-get install -y wrk caddy                 # optional, for the router row (the run tries it when root)',
  );
  L.push(
    `npx node bench/platform/run.ts              # --runs ${cfg.runs} --apps ${cfg.apps} --interval-ms ${cfg.pollIntervalMs} --wrk-seconds ${wrkSeconds(cfg)} --idle-apps ${cfg.idle?.apps[1] ?? 0} --idle-seconds ${cfg.idle?.seconds ?? 30}; --no-wrk, --no-write`,
  );
  L.push('```');
  L.push('');
  L.push(
    `The run installs pm2 7 into \`bench/.scratch/\` (gitignored) when missing, starts \`minipaas up\` on a temp ` +
      '`MINIPAAS_HOME` with free ports and otherwise default settings, and stops everything it started at the end ' +
      `(SIGTERM to \`minipaas up\`, \`pm2 kill\`, bare node and Caddy killed), also on failure or Ctrl-C. ` +
      `This run took ${r.durationS} s. It writes bench/results/platform.json and this section.` +
      (r.notes.length ? ` Notes: ${r.notes.join('; ')}.` : ''),
  );
  L.push('');
  return L.join('\n');
}

function idleSection(r: Results): string[] {
  if (!r.idle || 'skipped' in r.idle) return [];
  const { windows, summary } = r.idle;
  const [a, b] = windows as [IdleWindow, IdleWindow];
  const L: string[] = [];
  L.push('### Idle cost');
  L.push('');
  L.push(
    `Nothing is asked of either side: CPU time (\`utime + stime\` from \`/proc/<pid>/stat\`) and bytes written ` +
      `(\`wchar\`: every write to files, pipes and sockets, including the control plane ↔ agent protocol; ` +
      `\`write_bytes\`: what goes to the disk) of MiniPaaS's processes (${[
        ...new Set(
          Object.keys(a.processes)
            .filter((k) => k !== 'pm2Daemon')
            .map((k) => k.split(':')[0]),
        ),
      ].join(', ')}) and of pm2's daemon, over a ${a.seconds} s window after 10 s of settling, ` +
      `scaled to one minute; first with ${a.apps} hello-node apps on each side, then with ${b.apps} ` +
      `(${summary.appsRatio}× the apps), in the same run.`,
  );
  L.push('');
  L.push(
    `| per minute, idle | MiniPaaS, ${a.apps} apps | MiniPaaS, ${b.apps} apps | growth | pm2 daemon, ${a.apps} apps | pm2 daemon, ${b.apps} apps |`,
  );
  L.push('| --- | ---: | ---: | ---: | ---: | ---: |');
  const kib = (v: number): string => (v >= 1024 ? `${(v / 1024).toFixed(2)} MiB` : `${v} KiB`);
  const g = (p: number, q: number): string => (p > 0 ? x(q / p) : '-');
  L.push(
    `| CPU time | ${a.minipaas.cpuMsPerMin} ms | ${b.minipaas.cpuMsPerMin} ms | ${g(a.minipaas.cpuMsPerMin, b.minipaas.cpuMsPerMin)} | ${a.pm2.cpuMsPerMin} ms | ${b.pm2.cpuMsPerMin} ms |`,
  );
  L.push(
    `| bytes written (wchar) | ${kib(a.minipaas.wcharKiBPerMin)} | ${kib(b.minipaas.wcharKiBPerMin)} | ${g(a.minipaas.wcharKiBPerMin, b.minipaas.wcharKiBPerMin)} | ${kib(a.pm2.wcharKiBPerMin)} | ${kib(b.pm2.wcharKiBPerMin)} |`,
  );
  L.push(
    `| bytes to disk (write_bytes) | ${kib(a.minipaas.writeKiBPerMin)} | ${kib(b.minipaas.writeKiBPerMin)} | ${g(a.minipaas.writeKiBPerMin, b.minipaas.writeKiBPerMin)} | ${kib(a.pm2.writeKiBPerMin)} | ${kib(b.pm2.writeKiBPerMin)} |`,
  );
  L.push('');
  // processes of one program (`postgres:<pid>`) are summed as `postgres ×N`
  const per = (w: IdleWindow): string => {
    const groups = new Map<string, { n: number; cpu: number; wchar: number; disk: number }>();
    for (const [k, v] of Object.entries(w.processes)) {
      if (k === 'pm2Daemon') continue;
      const name = k.split(':')[0] ?? k;
      const g = groups.get(name) ?? { n: 0, cpu: 0, wchar: 0, disk: 0 };
      g.n++;
      g.cpu += v.cpuMsPerMin;
      g.wchar += v.wcharKiBPerMin;
      g.disk += v.writeKiBPerMin;
      groups.set(name, g);
    }
    const r1 = (v: number): number => Math.round(v * 10) / 10;
    return [...groups]
      .map(
        ([k, g]) =>
          `${k}${g.n > 1 ? ` ×${g.n}` : ''} ${r1(g.cpu)} ms / ${kib(r1(g.wchar))} / ${kib(r1(g.disk))}`,
      )
      .join(', ');
  };
  const mem = (w: IdleWindow): string => {
    const own = Object.entries(w.memory).filter(([k]) => k !== 'pm2Daemon');
    const rss = own.reduce((t, [, v]) => t + v.rssKiB, 0) / 1024;
    const pss = own.reduce((t, [, v]) => t + (v.pssKiB ?? 0), 0) / 1024;
    const d = w.memory.pm2Daemon;
    return `MiniPaaS RSS ${rss.toFixed(1)} MiB (PSS ${pss.toFixed(1)}), pm2 daemon ${((d?.rssKiB ?? 0) / 1024).toFixed(1)} MiB (PSS ${((d?.pssKiB ?? 0) / 1024).toFixed(1)})`;
  };
  L.push(
    `Per process (CPU / wchar / to disk per minute): ${a.apps} apps: ${per(a)}; ${b.apps} apps: ${per(b)}. ` +
      `Memory at the end of each window: ${a.apps} apps: ${mem(a)}; ${b.apps} apps: ${mem(b)}. ` +
      'The reconciler checks every 5 s with one `GET /v1/apps` and pushes only apps whose row or spec digest ' +
      'differs; every 5 min it pushes every app once (no-ops for the agent), which may or may not fall in a window. ' +
      'CPU time is counted in clock ticks (10 ms) per process, so each process is ±20 ms per minute.' +
      [a, b]
        .filter((w) => w.vanished?.length)
        .map(
          (w) =>
            ` Not counted in the ${w.apps}-app window: ${w.vanished.join(', ')} (exited during it, e.g. a PostgreSQL autovacuum worker).`,
        )
        .join(''),
  );
  L.push('');
  return L;
}

function wrkSeconds(cfg: Results['config']): string {
  return String(cfg.wrk?.durationS ?? 10);
}

/** Replaces the "## Platform" section (up to the next "## " heading) and keeps every other section as it is. */
export function spliceSection(doc: string, section: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => /^## Platform\s*$/.test(l));
  if (start === -1) {
    const base = doc.trimEnd();
    return `${base}${base ? '\n\n' : ''}${section.trimEnd()}\n`;
  }
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    if (/^## /.test(lines[i] as string) || /^# /.test(lines[i] as string)) {
      end = i;
      break;
    }
  }
  const before = lines.slice(0, start).join('\n');
  const after = lines.slice(end).join('\n');
  return `${before}${before ? '\n' : ''}${section.trimEnd()}\n${after ? `\n${after}` : ''}`.replace(
    /\n*$/,
    '\n',
  );
}

export async function writeDoc(r: Results): Promise<string> {
  const section = platformSection(r);
  // read just before writing: another engineer owns other sections of this file
  let doc = '';
  try {
    doc = await readFile(DOC_FILE, 'utf8');
  } catch {
    doc =
      '# Benchmarks\n\nEach section is written by its benchmark under `bench/`; run them on one machine and compare ratios.\n';
  }
  await writeFile(DOC_FILE, spliceSection(doc, section));
  return DOC_FILE;
}
