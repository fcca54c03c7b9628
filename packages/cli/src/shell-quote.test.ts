import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { quoteArg, shellJoin } from './shell-quote.ts';

/** Runs the joined line in a real /bin/sh and returns the argv it sees. */
function roundTrip(line: string, env: Record<string, string> = {}): string[] {
  const out = execFileSync('/bin/sh', ['-c', `for a in ${line}; do printf '%s\\0' "$a"; done`], {
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
  });
  return out.split('\0').slice(0, -1);
}

describe('shellJoin', () => {
  it('leaves plain words and $VARS readable', () => {
    expect(shellJoin(['node', 'server.js', '--port', '$PORT'])).toBe('node server.js --port $PORT');
    const braced = ['$', '{PORT}'].join('');
    expect(shellJoin(['./my-app', `--listen=:${braced}`])).toBe(`./my-app --listen=:${braced}`);
  });

  it('quotes spaces, quotes and shell syntax', () => {
    expect(quoteArg('hello world')).toBe("'hello world'");
    expect(quoteArg("it's")).toBe(`'it'\\''s'`);
    expect(quoteArg('')).toBe("''");
    expect(quoteArg('a;b|c')).toBe("'a;b|c'");
    expect(quoteArg('*')).toBe("'*'");
  });

  it('round-trips through a real shell, expanding only $NAME references', () => {
    const argv = [
      'python3',
      '-c',
      'print("hi $USER")',
      'it\'s "x"',
      '$(id)',
      '`id`',
      '$5',
      'a\\b',
      '',
      '*',
      '$PORT',
    ];
    expect(roundTrip(shellJoin(argv), { PORT: '4242', USER: 'bob' })).toEqual([
      'python3',
      '-c',
      'print("hi bob")',
      'it\'s "x"',
      '$(id)',
      '`id`',
      '$5',
      'a\\b',
      '',
      '*',
      '4242',
    ]);
  });
});
