import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_RESTART_POLICY } from './instance.ts';

describe('backoffDelay', () => {
  it('restarts immediately the first time, then grows, capped', () => {
    const p = DEFAULT_RESTART_POLICY;
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(p, n))).toEqual([0, 250, 500, 1000, 2000, 4000]);
    expect(backoffDelay(p, 50)).toBe(p.maxBackoffMs);
  });
});
