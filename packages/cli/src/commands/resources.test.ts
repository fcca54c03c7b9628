import { describe, expect, it } from 'vitest';
import { parseCpu, parseMemoryMb, usageCells } from './resources.ts';
import { parseSize } from './volumes.ts';

describe('resource and size arguments', () => {
  it('parses memory in MiB or GiB, and "default"', () => {
    expect(parseMemoryMb('256')).toBe(256);
    expect(parseMemoryMb('256M')).toBe(256);
    expect(parseMemoryMb('1G')).toBe(1024);
    expect(parseMemoryMb('default')).toBeNull();
    expect(() => parseMemoryMb('lots')).toThrow(/invalid memory/);
  });

  it('parses CPU as millicores or cores', () => {
    expect(parseCpu('500m')).toBe(500);
    expect(parseCpu('0.5')).toBe(500);
    expect(parseCpu('2')).toBe(2000);
    expect(parseCpu('250')).toBe(250);
    expect(parseCpu('default')).toBeNull();
    expect(() => parseCpu('-1')).toThrow(/invalid cpu/);
  });

  it('parses volume sizes with binary units', () => {
    expect(parseSize('1024')).toBe(1024);
    expect(parseSize('1K')).toBe(1024);
    expect(parseSize('512M')).toBe(512 * 1024 ** 2);
    expect(parseSize('5G')).toBe(5 * 1024 ** 3);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(() => parseSize('0')).toThrow();
    expect(() => parseSize('five')).toThrow(/invalid size/);
  });

  it('formats ps usage cells against an enforced limit only', () => {
    expect(usageCells({})).toEqual(['-', '-']);
    const usage = { cpuMillicores: 250, memoryBytes: 32 * 1024 * 1024 };
    expect(usageCells({ usage, limits: { mode: 'cgroup-v1', memoryMb: 64 } })).toEqual([
      '25%',
      '32.0 MB / 64.0 MB',
    ]);
    expect(usageCells({ usage, limits: { mode: 'unsupported', memoryMb: 64 } })[1]).not.toContain('/');
  });
});
