/**
 * Writes the migrations as one SQL file for psql:
 *   npx node packages/sql/src/export-sql.ts [--down] [output.sql]
 * Without an output path the script goes to stdout. Apply with `psql "$DATABASE_URL" -f output.sql`.
 */
import { writeFileSync } from 'node:fs';
import { migrationSql } from './migrations.ts';

const args = process.argv.slice(2);
const sql = migrationSql(args.includes('--down') ? 'down' : 'up');
const out = args.find((a) => !a.startsWith('--'));
if (out) writeFileSync(out, sql);
else process.stdout.write(sql);
