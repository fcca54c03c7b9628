import { describe, expect, it } from 'vitest';
import { parseEnvNames, parseEnvPairs, parseScaleArgs } from './args.ts';

describe('parseScaleArgs', () => {
  it('parses TYPE=N pairs and a bare number as web', () => {
    expect(parseScaleArgs(['web=3', 'worker=0'])).toEqual({ web: 3, worker: 0 });
    expect(parseScaleArgs(['2'])).toEqual({ web: 2 });
  });

  it('rejects malformed arguments with a clear message', () => {
    expect(() => parseScaleArgs([])).toThrow(/web=3/);
    expect(() => parseScaleArgs(['web=x'])).toThrow(/invalid scale argument "web=x"/);
    expect(() => parseScaleArgs(['web=-1'])).toThrow(/invalid scale argument/);
    expect(() => parseScaleArgs(['we b=1'])).toThrow(/invalid process type/);
    expect(() => parseScaleArgs(['web=101'])).toThrow(/at most 100/);
  });
});

describe('parseEnvPairs', () => {
  it('splits on the first = and keeps empty values', () => {
    expect(parseEnvPairs(['A=1', 'URL=postgres://u:p@h/db?x=y', 'EMPTY='])).toEqual({
      A: '1',
      URL: 'postgres://u:p@h/db?x=y',
      EMPTY: '',
    });
  });

  it('rejects missing names and invalid names', () => {
    expect(() => parseEnvPairs(['=1'])).toThrow(/NAME=VALUE/);
    expect(() => parseEnvPairs(['NOVALUE'])).toThrow(/NAME=VALUE/);
    expect(() => parseEnvPairs(['1A=x'])).toThrow(/invalid env var name "1A"/);
  });

  it('validates names to unset', () => {
    expect(parseEnvNames(['A', 'B_2'])).toEqual(['A', 'B_2']);
    expect(() => parseEnvNames(['A-B'])).toThrow(/invalid env var name/);
    expect(() => parseEnvNames([])).toThrow(/at least one/);
  });
});
