/**
 * The one way the control plane runs programs: argument arrays, never a shell string.
 *
 * Every program runs in its own process group, and the whole group dies with it: on timeout, on abort,
 * when the program itself exits (helpers it left behind are killed) and when minipaasd dies, even by
 * SIGKILL. Node has no PR_SET_PDEATHSIG, so a tiny watchdog process per program holds a pipe from
 * minipaasd: when that pipe closes without a "done" line (minipaasd is gone), it kills the group.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Called with every output line (stdout and stderr). */
  onLine?: (line: string) => void;
  /** Kill the program (its whole process group) after this long. */
  timeoutMs?: number;
  /** Kills the program's process group; the promise then rejects with an `AbortError`. */
  signal?: AbortSignal;
  /** Run as this user (the caller must be root). */
  uid?: number;
  gid?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/**
 * The watchdog (`node -e WATCHDOG PGID`): waits on its stdin; "done" means the program finished
 * normally, end of input without it means minipaasd died, so the group is killed.
 */
const WATCHDOG = `
const pgid = Number(process.argv[1]);
let done = false;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { if (d.includes('done')) done = true; });
const end = () => {
  if (!done && pgid > 1) {
    try { process.kill(-pgid, 'SIGKILL'); } catch (err) { if (err.code !== 'ESRCH') process.exitCode = 1; }
  }
  process.exit();
};
process.stdin.on('end', end);
process.stdin.on('error', end);
`;

function abortError(signal: AbortSignal): Error {
  const err = new Error('the program was aborted', { cause: signal.reason });
  err.name = 'AbortError';
  return err;
}

/** SIGKILL to a whole process group; a group that is already gone is fine. */
function killGroup(pgid: number | undefined): void {
  if (pgid === undefined || pgid <= 1) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function startWatchdog(pgid: number): ChildProcess {
  const dog = spawn(process.execPath, ['-e', WATCHDOG, String(pgid)], {
    detached: true, // its own group: whatever kills minipaasd's group must not take the watchdog along
    stdio: ['pipe', 'ignore', 'ignore'],
    env: {},
  });
  dog.unref();
  return dog;
}

export function runProgram(file: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(abortError(opts.signal));
      return;
    }
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // a process group of its own, so the whole tree can be killed
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    });
    const pgid = child.pid;
    const dog = pgid !== undefined ? startWatchdog(pgid) : undefined;
    let failure: Error | undefined;
    let timedOut = false;
    const kill = () => {
      try {
        killGroup(pgid);
      } catch (err) {
        failure ??= err as Error;
      }
    };
    dog?.on('error', (err) => {
      failure ??= new Error(`cannot start the build watchdog: ${err.message}`);
      kill();
    });
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          kill();
        }, opts.timeoutMs)
      : null;
    const onAbort = () => {
      if (opts.signal) failure ??= abortError(opts.signal);
      kill();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (l) => opts.onLine?.(l));
    }
    const finish = () => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      dog?.stdin?.end('done\n');
    };
    child.on('error', (err) => {
      finish();
      reject(err);
    });
    // The leader exited: kill what it left in its group (it would otherwise hold the output pipes open).
    child.on('exit', kill);
    child.on('close', (code, signal) => {
      finish();
      if (failure) reject(failure);
      else resolve({ code, signal, timedOut });
    });
  });
}
