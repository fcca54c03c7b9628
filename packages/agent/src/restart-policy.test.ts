import { describe, expect, it } from 'vitest';
import { backoffDelay, CrashTracker, DEFAULT_RESTART_POLICY } from './restart-policy.ts';

describe('backoffDelay', () => {
  it('follows the list, then doubles up to the max', () => {
    const p = DEFAULT_RESTART_POLICY;
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(p, n))).toEqual([0, 250, 500, 1000, 2000, 4000]);
    expect(backoffDelay(p, 50)).toBe(p.maxBackoffMs);
  });
});

describe('CrashTracker', () => {
  const policy = { ...DEFAULT_RESTART_POLICY, maxFastCrashes: 3 };

  it('backs off on consecutive crashes and calls a run of fast crashes a crash loop', () => {
    const t = new CrashTracker(policy);
    expect(t.record(10)).toEqual({ restart: true, delayMs: 0 });
    expect(t.record(10)).toEqual({ restart: true, delayMs: 250 });
    expect(t.record(10)).toEqual({ restart: false, fastCrashes: 3 });
  });

  it('a slow exit breaks the run, a stable one resets the backoff; agent-caused exits are never fast', () => {
    const t = new CrashTracker(policy);
    t.record(10);
    t.record(10);
    expect(t.record(policy.fastCrashMs)).toEqual({ restart: true, delayMs: 500 });
    expect(t.record(10, false)).toEqual({ restart: true, delayMs: 1000 });
    expect(t.record(policy.stableMs)).toEqual({ restart: true, delayMs: 0 });
  });
});
