/** A child process the supervisor keeps running: restarted with backoff when it exits unexpectedly. */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { isAlive, sleep } from './platform.ts';

/** A program run directly (not a Node bin), with an argument array and optionally another identity. */
export interface ManagedCommand {
  file: string;
  args: string[];
  /** Run as this user and group (the supervisor must be root). */
  uid?: number | undefined;
  gid?: number | undefined;
}

export interface ManagedProcessOptions {
  /** Display name (`minipaasd`, `agent`, `postgres`). */
  name: string;
  /** The JavaScript bin to run with this Node (`process.execPath`); ignored when `command` is set. */
  bin?: string;
  /** Node options before `bin` (e.g. V8 heap flags); ignored when `command` is set. */
  nodeArgs?: readonly string[];
  /** A program to run instead of a Node bin. */
  command?: ManagedCommand;
  env: NodeJS.ProcessEnv;
  /** Append the process's output to this file instead of the supervisor's output. */
  logFile?: string;
  /** The signal that asks the process to stop (default SIGTERM; PostgreSQL's fast shutdown is SIGINT). */
  stopSignal?: NodeJS.Signals;
  /** Supervisor messages. */
  log: (line: string) => void;
  /** Called when the process keeps dying right after start: the supervisor gives up. */
  onCrashLoop: (reason: string) => void;
  /** How many consecutive fast exits (< `fastExitMs` after start) count as a crash loop. Default 5. */
  maxFastExits?: number;
  fastExitMs?: number;
}

const MAX_BACKOFF_MS = 30_000;
const STABLE_MS = 30_000;

export class ManagedProcess {
  readonly opts: ManagedProcessOptions;
  #child: ChildProcess | undefined;
  /** Pid of a process we adopted instead of starting (watched by polling). */
  #adoptedPid: number | undefined;
  #watch: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #attempts = 0;
  #fastExits = 0;
  #startedAt = 0;
  #exit: Promise<void> = Promise.resolve();
  #restarts = false;
  #lastExit: string | undefined;

  constructor(opts: ManagedProcessOptions) {
    this.opts = opts;
  }

  get pid(): number | undefined {
    return this.#child?.pid ?? this.#adoptedPid;
  }

  /** How the process last exited (`code 1`, `signal SIGKILL`). */
  get lastExit(): string | undefined {
    return this.#lastExit;
  }

  /** Turns on restart-with-backoff. Before this (while starting up) an exit is left to the caller. */
  enableRestarts(): void {
    this.#restarts = true;
  }

  get running(): boolean {
    const pid = this.pid;
    if (this.#child) return this.#child.exitCode === null && this.#child.signalCode === null;
    return pid !== undefined && isAlive(pid);
  }

  /** Starts the process (in its own process group so a terminal Ctrl-C reaches only the supervisor). */
  start(): void {
    this.#adoptedPid = undefined;
    this.#startedAt = Date.now();
    const { command, logFile } = this.opts;
    const [file, args] = command
      ? [command.file, command.args]
      : [process.execPath, [...(this.opts.nodeArgs ?? []), this.opts.bin ?? '']];
    const out = logFile ? openSync(logFile, 'a', 0o600) : 'inherit';
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        detached: true,
        stdio: ['ignore', out, out],
        env: this.opts.env,
        ...(command?.uid !== undefined ? { uid: command.uid } : {}),
        ...(command?.gid !== undefined ? { gid: command.gid } : {}),
      });
    } finally {
      if (typeof out === 'number') closeSync(out);
    }
    this.#child = child;
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        resolve();
        this.#exited(child, code, signal);
      });
      child.once('error', (err) => {
        this.opts.log(`${this.opts.name}: cannot start: ${err.message}`);
      });
    });
  }

  /** Watches a process that was already running (e.g. an agent left by an earlier supervisor). */
  adopt(pid: number): void {
    this.#adoptedPid = pid;
    this.#watch = setInterval(() => {
      if (this.#stopping || this.#adoptedPid === undefined || isAlive(this.#adoptedPid)) return;
      clearInterval(this.#watch);
      this.#watch = undefined;
      this.opts.log(`${this.opts.name} (pid ${pid}) is gone; starting a new one`);
      this.start();
      this.enableRestarts();
    }, 1000); // kept referenced: with everything adopted, this watch is what keeps the supervisor alive
  }

  #exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.#child) return;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    this.#lastExit = how;
    if (this.#stopping || !this.#restarts) return;
    const ranMs = Date.now() - this.#startedAt;
    if (ranMs >= STABLE_MS) this.#attempts = 0;
    this.#fastExits = ranMs < (this.opts.fastExitMs ?? 5000) ? this.#fastExits + 1 : 0;
    if (this.#fastExits >= (this.opts.maxFastExits ?? 5)) {
      this.opts.onCrashLoop(
        `${this.opts.name} exited (${how}) ${this.#fastExits} times right after starting`,
      );
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.#attempts);
    this.#attempts++;
    this.opts.log(
      `${this.opts.name} exited unexpectedly (${how}); restarting in ${(delay / 1000).toFixed(2)}s`,
    );
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (!this.#stopping) this.start();
    }, delay);
  }

  /** Waits for the process to exit; true when it did within `ms`. */
  async waitExit(ms: number): Promise<boolean> {
    if (this.#child) {
      if (!this.running) return true;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((r) => {
        timer = setTimeout(() => r(false), ms);
      });
      const ok = await Promise.race([this.#exit.then(() => true as const), timeout]);
      clearTimeout(timer);
      return ok;
    }
    const deadline = Date.now() + ms;
    while (this.running) {
      if (Date.now() >= deadline) return false;
      await sleep(100);
    }
    return true;
  }

  /** Marks the process as stopping (no more restarts) without signalling it. */
  detach(): void {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    if (this.#watch) clearInterval(this.#watch);
  }

  /** Sends the stop signal (SIGTERM by default), waits up to `graceMs`, then SIGKILL if `force`. */
  async stop(graceMs: number, force = true): Promise<void> {
    this.detach();
    const pid = this.pid;
    if (pid === undefined || !this.running) return;
    this.signal(this.opts.stopSignal ?? 'SIGTERM');
    if (await this.waitExit(graceMs)) return;
    if (!force) return;
    this.opts.log(`${this.opts.name} did not stop within ${Math.round(graceMs / 1000)}s; killing it`);
    this.signal('SIGKILL');
    await this.waitExit(5000);
  }

  signal(sig: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}
