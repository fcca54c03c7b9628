/** Restart, crash-loop and health timing. Every field has a production default. */
export interface RestartPolicy {
  /** Delays before restart number 1, 2, 3, … after consecutive crashes; the last one repeats doubled up to maxBackoffMs. */
  backoffMs: number[];
  maxBackoffMs: number;
  /** An instance up this long resets its crash counters. */
  stableMs: number;
  /** An exit within this time of start counts as a fast crash. */
  fastCrashMs: number;
  /** Consecutive fast crashes that mark the instance `failed` (crash loop). */
  maxFastCrashes: number;
  /** Time a starting instance may take to become healthy before it is killed. */
  startTimeoutMs: number;
  /** A non-web instance is healthy after staying up this long. */
  nonWebHealthyMs: number;
  /** Interval between health probes while starting. */
  probeIntervalMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  backoffMs: [0, 250, 500, 1000],
  maxBackoffMs: 30_000,
  stableMs: 10_000,
  fastCrashMs: 5_000,
  maxFastCrashes: 5,
  startTimeoutMs: 60_000,
  nonWebHealthyMs: 1_000,
  probeIntervalMs: 100,
};

/** Delay before the n-th consecutive restart (n >= 1). */
export function backoffDelay(policy: RestartPolicy, n: number): number {
  const list = policy.backoffMs;
  if (n <= list.length) return Math.min(list[n - 1] ?? 0, policy.maxBackoffMs);
  const last = list[list.length - 1] ?? 1000;
  return Math.min(Math.max(last, 1) * 2 ** (n - list.length), policy.maxBackoffMs);
}

/** What to do after a crash: restart after a delay, or give up (crash loop). */
export type CrashVerdict = { restart: true; delayMs: number } | { restart: false; fastCrashes: number };

/**
 * The crash counters of one instance slot under a {@link RestartPolicy}: consecutive crashes choose the
 * backoff, consecutive fast crashes (exits soon after start) end in a crash loop; a process that stayed up
 * `stableMs` resets both.
 */
export class CrashTracker {
  readonly policy: RestartPolicy;
  private consecutive = 0;
  private fast = 0;

  constructor(policy: RestartPolicy) {
    this.policy = policy;
  }

  /**
   * Records a crash after `uptimeMs`. `countsAsFast: false` for exits the agent caused (a failed health
   * check), which never count towards a crash loop.
   */
  record(uptimeMs: number, countsAsFast = true): CrashVerdict {
    if (uptimeMs >= this.policy.stableMs) {
      this.consecutive = 0;
      this.fast = 0;
    }
    this.consecutive++;
    if (uptimeMs < this.policy.fastCrashMs && countsAsFast) this.fast++;
    else this.fast = 0;
    if (this.fast >= this.policy.maxFastCrashes) return { restart: false, fastCrashes: this.fast };
    return { restart: true, delayMs: backoffDelay(this.policy, this.consecutive) };
  }
}
