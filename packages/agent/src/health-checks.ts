import type { HttpCheck } from '@minipaas/core';
import { CHECK_DEFAULTS, httpCheck } from './health-probe.ts';

/** What the check loops need from the instance whose process they check. */
export interface CheckTarget {
  port: number;
  /** When the process started (ms since the epoch): `initialDelayMs` counts from here. */
  startedMs: number;
  /** How long a starting process may take to listen at all. */
  startTimeoutMs: number;
  /** Upper bound of the pause between tries while nothing listens yet. */
  probeIntervalMs: number;
  /** False once the process (or the phase) the loop runs for is over: the loop then returns null. */
  current(): boolean;
  /** Waits `ms`; may never resolve when the instance cancels it (the process exited). */
  sleep(ms: number): Promise<void>;
}

const plural = (n: number) => `${n} attempt${n === 1 ? '' : 's'}`;

/**
 * Runs every startup and readiness check in turn until each passed once. Resolves with null when all
 * passed (or the target is no longer current), else with the reason of the check that failed, e.g.
 * `startup check /: body does not contain "ok" (5 attempts)`.
 *
 * Tries start fast (most apps answer within tens of ms) and back off to the check's `waitMs`; tries while
 * nothing listens yet do not use up `attempts` (the start timeout bounds them).
 */
export async function startupChecks(t: CheckTarget, checks: HttpCheck[]): Promise<string | null> {
  for (const check of checks.filter((c) => c.type !== 'liveness')) {
    const reason = await untilPasses(t, check);
    if (!t.current()) return null;
    if (reason !== null) return `${check.type} check ${check.path}: ${reason}`;
  }
  return null;
}

/** Tries one check until it passes (null) or fails for good (the reason). */
async function untilPasses(t: CheckTarget, check: HttpCheck): Promise<string | null> {
  const attempts = check.attempts ?? CHECK_DEFAULTS.attempts;
  const wait = check.waitMs ?? CHECK_DEFAULTS.waitMs;
  const deadline = t.startedMs + t.startTimeoutMs;
  const firstAt = t.startedMs + (check.initialDelayMs ?? CHECK_DEFAULTS.initialDelayMs);
  if (Date.now() < firstAt) await t.sleep(firstAt - Date.now());
  let failures = 0;
  let idleDelay = 10;
  let answeredDelay = Math.min(250, wait);
  for (;;) {
    if (!t.current()) return null;
    const r = await httpCheck(t.port, check);
    if (!t.current() || r.ok) return null;
    if (r.answered) {
      failures++;
      if (failures >= attempts) return `${r.reason} (${plural(attempts)})`;
      await t.sleep(answeredDelay);
      answeredDelay = Math.min(wait, answeredDelay * 2);
    } else {
      if (Date.now() > deadline) return `${r.reason} (not listening within ${t.startTimeoutMs}ms)`;
      await t.sleep(idleDelay);
      idleDelay = Math.min(Math.max(t.probeIntervalMs, 10), Math.ceil(idleDelay * 1.5));
    }
  }
}

/**
 * Liveness checks of a running instance, each every `waitMs` after its `initialDelayMs`. Resolves with the
 * reason once one check failed `attempts` times in a row (e.g. `liveness check /health: answered 500
 * (3 attempts)`), or with null when the target is no longer current.
 */
export async function livenessChecks(t: CheckTarget, checks: HttpCheck[]): Promise<string | null> {
  const live = checks.filter((c) => c.type === 'liveness');
  if (live.length === 0) return null;
  const failures = new Map<HttpCheck, number>();
  const next = new Map<HttpCheck, number>(
    live.map((c) => [c, Date.now() + (c.initialDelayMs ?? CHECK_DEFAULTS.initialDelayMs)]),
  );
  while (t.current()) {
    const due = Math.min(...next.values());
    await t.sleep(Math.max(0, due - Date.now()));
    for (const c of live) {
      if (!t.current()) return null;
      if ((next.get(c) ?? 0) > Date.now()) continue;
      const r = await httpCheck(t.port, c);
      if (!t.current()) return null;
      next.set(c, Date.now() + (c.waitMs ?? CHECK_DEFAULTS.waitMs));
      if (r.ok) {
        failures.set(c, 0);
        continue;
      }
      const n = (failures.get(c) ?? 0) + 1;
      failures.set(c, n);
      const attempts = c.attempts ?? CHECK_DEFAULTS.attempts;
      if (n >= attempts) return `liveness check ${c.path}: ${r.reason} (${plural(attempts)})`;
    }
  }
  return null;
}
