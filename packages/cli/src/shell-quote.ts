/**
 * Joins an argv into one command line for the server, which runs it like a Procfile entry
 * (`/bin/sh -c "exec <command>"`). Quoting keeps every argument intact, while `$NAME` and `${NAME}`
 * references stay live so `$PORT` is expanded where the app runs. Other shell syntax (`$(...)`,
 * backticks, globs, `;`, `|`) is quoted away.
 */

const PLAIN = /^[A-Za-z0-9_\-+=:,./@%^]+$/;
const PLAIN_WITH_VARS =
  /^(?:[A-Za-z0-9_\-+=:,./@%^]|\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\})+$/;

/** Quotes one argument for a POSIX shell, keeping `$NAME` / `${NAME}` expansion. */
export function quoteArg(arg: string): string {
  if (arg === '') return "''";
  if (PLAIN.test(arg) || PLAIN_WITH_VARS.test(arg)) return arg;
  if (!arg.includes('$')) return `'${arg.replaceAll("'", `'\\''`)}'`;
  // Double quotes: escape what is special inside them except variable references.
  let out = '"';
  for (let i = 0; i < arg.length; i++) {
    const ch = arg[i] as string;
    if (ch === '\\' || ch === '"' || ch === '`') out += `\\${ch}`;
    else if (ch === '$') {
      const rest = arg.slice(i + 1);
      out += /^(?:[A-Za-z_]|\{[A-Za-z_][A-Za-z0-9_]*\})/.test(rest) ? '$' : '\\$';
    } else out += ch;
  }
  return `${out}"`;
}

/** Joins argv into a shell command line (see {@link quoteArg}). */
export function shellJoin(argv: readonly string[]): string {
  return argv.map(quoteArg).join(' ');
}
