import { migrationSql } from '@minipaas/sql';
import { describe, expect, it } from 'vitest';
import { splitSql } from './kysely-executor.ts';

describe('splitSql', () => {
  it('splits at top-level semicolons only', () => {
    const script = `-- a comment; not a statement
CREATE TABLE t (a text DEFAULT 'x;y', "b;c" int);
/* block; comment */ INSERT INTO t VALUES ('it''s; fine', 1);
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$;
DO $$ BEGIN PERFORM 1; END $$;
SELECT 1`;
    expect(splitSql(script)).toEqual([
      `-- a comment; not a statement\nCREATE TABLE t (a text DEFAULT 'x;y', "b;c" int)`,
      `/* block; comment */ INSERT INTO t VALUES ('it''s; fine', 1)`,
      'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$',
      'DO $$ BEGIN PERFORM 1; END $$',
      'SELECT 1',
    ]);
  });

  it('keeps every dollar-quoted body of the @minipaas/sql migration whole', () => {
    const statements = splitSql(migrationSql('up'));
    expect(statements.length).toBeGreaterThan(20);
    for (const s of statements) {
      const tags = s.match(/\$[A-Za-z_]*\$/g) ?? [];
      expect(tags.length % 2, s.slice(0, 80)).toBe(0);
    }
  });
});
