import { describe, expect, it } from 'vitest';
import { checkAddonName, databaseNameFor, envVarFor } from './addon-service.ts';
import {
  connectionUrl,
  maskUrl,
  PG_NAME_RE,
  quoteIdent,
  quoteLiteral,
  serverAddress,
} from './postgres-admin.ts';

describe('SQL quoting', () => {
  it('quotes identifiers and doubles embedded quotes', () => {
    expect(quoteIdent('mp_a_b')).toBe('"mp_a_b"');
    expect(quoteIdent('x"; DROP ROLE postgres; --')).toBe('"x""; DROP ROLE postgres; --"');
    expect(() => quoteIdent('')).toThrow(/invalid SQL identifier/);
    expect(() => quoteIdent('a\0b')).toThrow(/invalid SQL identifier/);
    expect(() => quoteIdent('a'.repeat(64))).toThrow(/invalid SQL identifier/);
  });

  it('quotes literals whatever standard_conforming_strings says', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(quoteLiteral('a\\b')).toBe("E'a\\\\b'");
    expect(quoteLiteral("\\'; DROP")).toBe("E'\\\\''; DROP'");
    expect(() => quoteLiteral('a\0')).toThrow(/NUL/);
  });
});

describe('add-on names', () => {
  it('accepts short lowercase names and refuses the rest', () => {
    for (const ok of ['postgres', 'db', 'cache-db', 'a1', 'a'.repeat(30)])
      expect(() => checkAddonName(ok)).not.toThrow();
    for (const bad of [
      '',
      'constructor',
      '__proto__',
      'toString',
      'Main',
      '../x',
      'a/b',
      '-a',
      'a-',
      'a'.repeat(31),
      'é',
      'a b',
    ])
      expect(() => checkAddonName(bad), bad).toThrow(/invalid add-on name/);
  });

  it('derives database names in the identifier alphabet, at most 63 bytes', () => {
    expect(databaseNameFor('my-app', 'cache-db', 'abcd1234')).toBe('mp_my_app_cache_db_abcd1234');
    const long = databaseNameFor('a'.repeat(40), 'b'.repeat(30));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(PG_NAME_RE);
    expect(databaseNameFor('a', 'b')).not.toBe(databaseNameFor('a', 'b'));
  });

  it('gives the first add-on DATABASE_URL and the others <NAME>_URL', () => {
    expect(envVarFor('postgres', new Set())).toBe('DATABASE_URL');
    expect(envVarFor('cache-db', new Set(['DATABASE_URL']))).toBe('CACHE_DB_URL');
  });
});

describe('connection URLs', () => {
  it('reuses the admin URL host: TCP on loopback, or the unix socket directory', () => {
    expect(serverAddress('postgres://postgres@localhost:5433/minipaas')).toEqual({
      host: '127.0.0.1',
      port: 5433,
      socket: false,
    });
    expect(serverAddress('postgres://postgres@/minipaas?host=/home/u/.minipaas/postgres/socket')).toEqual({
      host: '/home/u/.minipaas/postgres/socket',
      port: 5432,
      socket: true,
    });
    const tcp = connectionUrl({ host: '127.0.0.1', port: 5433, socket: false }, 'r', 'p/w+', 'd');
    expect(tcp).toBe('postgres://r:p%2Fw%2B@127.0.0.1:5433/d');
    const sock = connectionUrl({ host: '/s/sock', port: 5432, socket: true }, 'r', 'pw', 'd');
    expect(sock).toBe('postgres://r:pw@localhost:5432/d?host=%2Fs%2Fsock');
    expect(maskUrl(tcp)).toBe('postgres://r:********@127.0.0.1:5433/d');
  });
});
