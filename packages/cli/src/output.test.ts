import { describe, expect, it } from 'vitest';
import { ago, bytes, duration, table } from './output.ts';

describe('output helpers', () => {
  it('aligns table columns', () => {
    expect(
      table(
        ['NAME', 'STATUS'],
        [
          ['hello', 'running'],
          ['a', 'failed'],
        ],
      ),
    ).toBe('NAME   STATUS\nhello  running\na      failed\n');
  });

  it('formats durations and sizes', () => {
    expect(duration(5_400)).toBe('5s');
    expect(duration(65_000)).toBe('1m 5s');
    expect(duration(3_720_000)).toBe('1h 2m');
    expect(ago('2026-01-01T00:00:00Z', Date.parse('2026-01-01T00:01:00Z'))).toBe('1m 0s ago');
    expect(ago(null)).toBe('-');
    expect(bytes(2048)).toBe('2.0 KB');
  });
});
