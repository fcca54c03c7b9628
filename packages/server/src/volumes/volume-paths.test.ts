import { describe, expect, it } from 'vitest';
import { fileName, isInside, pathSegments } from './volume-paths.ts';

describe('pathSegments', () => {
  it('splits safe relative paths, with or without a trailing slash', () => {
    expect(pathSegments('a/b/c.txt')).toEqual(['a', 'b', 'c.txt']);
    expect(pathSegments('dir/')).toEqual(['dir']);
    expect(pathSegments('.hidden/..dots..')).toEqual(['.hidden', '..dots..']);
    expect(pathSegments('ünïcödé/file name.txt')).toEqual(['ünïcödé', 'file name.txt']);
    expect(pathSegments('', { allowRoot: true })).toEqual([]);
    expect(pathSegments('/', { allowRoot: true })).toEqual([]);
    expect(pathSegments(undefined, { allowRoot: true })).toEqual([]);
  });

  it.each([
    '',
    '/',
    '..',
    '../x',
    'a/../../x',
    '/etc/passwd',
    'a//b',
    'a/./b',
    '%2e%2e/x',
    '%2F',
    '%5c',
    '%00',
    '%252e',
    'a\u0000b',
    'a\nb',
    'a\\b',
    '\uff0e\uff0e',
    'x'.repeat(256),
    'a/'.repeat(2049),
  ])('refuses %j', (p) => {
    expect(() => pathSegments(p)).toThrow(expect.objectContaining({ code: 'MINIPAAS_ERR_VOLUME_PATH' }));
  });

  it('refuses non-strings', () => {
    expect(() => pathSegments(42)).toThrow(/must be a string/);
    expect(() => pathSegments({ toString: () => 'a' })).toThrow(/must be a string/);
  });
});

describe('fileName and isInside', () => {
  it('takes exactly one segment', () => {
    expect(fileName('a.txt')).toBe('a.txt');
    expect(() => fileName('a/b')).toThrow(/cannot contain \//);
    expect(() => fileName('../a')).toThrow();
  });

  it('compares whole path components', () => {
    expect(isInside('/v/1', '/v/1')).toBe(true);
    expect(isInside('/v/1', '/v/1/a')).toBe(true);
    expect(isInside('/v/1', '/v/10/a')).toBe(false);
    expect(isInside('/v/1', '/v')).toBe(false);
  });
});
