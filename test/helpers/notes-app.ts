/**
 * A small third-party-style web app for add-on tests, and a one-shot query helper: the app appends
 * `?add=x` to a table in its DATABASE_URL database and lists the rows.
 */
import { createRequire } from 'node:module';
import pg from 'pg';

const PG_MAIN = createRequire(import.meta.url).resolve('pg');

/** A web app that appends `?add=x` to a table in its DATABASE_URL database and lists the rows. */
export const NOTES_APP = `
const pg = require(${JSON.stringify(PG_MAIN)});
require('http').createServer(async (q, s) => {
  const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
  try {
    await c.connect();
    await c.query('CREATE TABLE IF NOT EXISTS notes (body text)');
    const add = new URL(q.url, 'http://x').searchParams.get('add');
    if (add) await c.query('INSERT INTO notes VALUES ($1)', [add]);
    const r = await c.query('SELECT body FROM notes ORDER BY body');
    s.end('notes:' + r.rows.map((x) => x.body).join(','));
  } catch (e) {
    s.statusCode = 500;
    s.end('error:' + e.message);
  } finally {
    await c.end().catch(() => undefined);
  }
}).listen(process.env.PORT);
`;

export async function query<T>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}
