/**
 * Rollout stage: hands the spec to the app's runtime driver and waits for its verdict on the release —
 * from the driver's `watch` stream when it has one, else by polling `get`.
 */
import { MinipaasError, type RuntimeAppState, type RuntimeDriver, type RuntimeSpec } from '@minipaas/core';

/** Polling (drivers without `watch`): fast at first (most apps are healthy within ~100 ms), then every 200 ms. */
const POLL_MIN_MS = 20;
const POLL_MAX_MS = 200;

export interface RolloutOptions {
  /** Restart the current release instead of applying `spec`. */
  restart?: boolean;
  /** How long the runtime may take to call the release healthy or failed. */
  timeoutMs: number;
}

function verdict(state: RuntimeAppState | null, release: string): RuntimeAppState | null {
  if (!state || state.rollout.release !== release) return null;
  return state.rollout.status === 'ready' || state.rollout.status === 'failed' ? state : null;
}

/** Applies (or restarts) and resolves with the state that holds the runtime's verdict on `spec.release`. */
export async function rollout(
  driver: RuntimeDriver,
  spec: RuntimeSpec,
  opts: RolloutOptions,
): Promise<RuntimeAppState> {
  const initial = opts.restart ? await driver.restart(spec.name) : await driver.apply(spec);
  const now = verdict(initial, spec.release);
  if (now) return now;
  return waitForVerdict(driver, spec.name, spec.release, opts.timeoutMs);
}

export async function waitForVerdict(
  driver: RuntimeDriver,
  app: string,
  release: string,
  timeoutMs: number,
): Promise<RuntimeAppState> {
  const timedOut = () =>
    new MinipaasError('MINIPAAS_ERR_BUILD_FAILED', `release ${release} did not become healthy in time`);
  const deadline = Date.now() + timeoutMs;
  if (driver.watch) {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    try {
      for await (const state of driver.watch(app, { signal: ac.signal })) {
        const v = verdict(state, release);
        if (v) return v;
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
    if (Date.now() >= deadline) throw timedOut();
    // The stream ended early (runtime restarted): fall back to polling for the rest of the time.
  }
  let delay = POLL_MIN_MS;
  while (Date.now() < deadline) {
    const v = verdict(await driver.get(app), release);
    if (v) return v;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(POLL_MAX_MS, delay * 2);
  }
  throw timedOut();
}
