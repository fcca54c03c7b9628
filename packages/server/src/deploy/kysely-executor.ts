/**
 * `@minipaas/sql`'s executor over the platform's Kysely instance, so the build queue runs on the same
 * connections (and, with {@link kyselyExecutor} of a transaction, in the same transaction) as the
 * deployment rows, on a PostgreSQL server and on PGlite alike. LISTEN is not offered here: the build
 * worker of a separate process gets a `pg` executor with LISTEN (see build-worker-main.ts).
 */
import type { SqlExecutor } from '@minipaas/sql';
import { CompiledQuery, type Kysely } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: any database: only raw queries are run
export function kyselyExecutor(db: Kysely<any>): SqlExecutor {
  return {
    async query<R>(text: string, params?: readonly unknown[]) {
      const res = await db.executeQuery<R>(CompiledQuery.raw(text, params ? [...params] : []));
      return { rows: res.rows };
    },
    async exec(script: string) {
      // PGlite's query() runs one statement at a time: split the script and run it in one transaction,
      // which is what a multi-statement simple query is on a server.
      const statements = splitSql(script);
      // biome-ignore lint/suspicious/noExplicitAny: as above
      const run = async (t: Kysely<any>) => {
        for (const s of statements) await t.executeQuery(CompiledQuery.raw(s));
      };
      if (db.isTransaction) await run(db);
      else await db.transaction().execute(run);
    },
  };
}

/**
 * Splits an SQL script into statements at top-level semicolons: not inside quotes, identifiers,
 * dollar-quoted bodies or comments.
 */
export function splitSql(script: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = script.length;
  while (i < n) {
    const ch = script[i] as string;
    if (ch === '-' && script[i + 1] === '-') {
      const end = script.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (ch === '/' && script[i + 1] === '*') {
      const end = script.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (ch === "'" || ch === '"') {
      let j = i + 1;
      for (;;) {
        const k = script.indexOf(ch, j);
        if (k < 0) {
          j = n;
          break;
        }
        if (script[k + 1] === ch) j = k + 2;
        else {
          j = k + 1;
          break;
        }
      }
      i = j;
    } else if (ch === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i, i + 64));
      if (m) {
        const end = script.indexOf(m[0], i + m[0].length);
        i = end < 0 ? n : end + m[0].length;
      } else i++;
    } else if (ch === ';') {
      const s = script.slice(start, i).trim();
      if (s && !isOnlyComments(s)) out.push(s);
      start = i + 1;
      i++;
    } else i++;
  }
  const rest = script.slice(start).trim();
  if (rest && !isOnlyComments(rest)) out.push(rest);
  return out;
}

function isOnlyComments(s: string): boolean {
  return s
    .split('\n')
    .map((l) => l.trim())
    .every((l) => l === '' || l.startsWith('--'));
}
