import { describe, expect, it } from 'vitest';
import { parseProcfile } from './procfile.ts';

describe('parseProcfile', () => {
  it('parses types, skipping comments and blank lines', () => {
    const text =
      '# comment\n\nweb: node server.js --port $PORT\nworker:   node worker.js\r\n  # indented comment\n';
    expect(parseProcfile(text)).toEqual({ web: 'node server.js --port $PORT', worker: 'node worker.js' });
  });
  it('keeps colons inside the command', () => {
    expect(parseProcfile('web: node -e "a:b"')).toEqual({ web: 'node -e "a:b"' });
  });
  it('rejects malformed lines with the line number', () => {
    expect(() => parseProcfile('web node server.js')).toThrow(/line 1/);
    expect(() => parseProcfile('web: a\nweb: b')).toThrow(/line 2: duplicate/);
    expect(() => parseProcfile('we$b: a')).toThrow(/invalid process type/);
    expect(() => parseProcfile('web:   ')).toThrow(/no command/);
  });
});
