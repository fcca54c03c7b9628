/**
 * How a Procfile command line becomes the script of an instance's shell (ADR 0003).
 *
 * Heroku runs a Procfile line with `bash -c`: assignments (`NODE_ENV=production node server.js`), `&&`
 * chains, `cd dir && …`, pipes and `$PORT` all work. The agent keeps that meaning with `/bin/sh -c` and two
 * shapes of script:
 *
 * - a **simple command** (optional `NAME=value` prefixes, then one program and its arguments, no shell
 *   operators) is `exec`ed after the assignments, so the instance's pid is the app's own process;
 * - anything else (**compound**) runs under the shell, which stays as the instance's main process: it traps
 *   SIGTERM so that it outlives the app's graceful stop (the agent signals the whole process group or cgroup,
 *   so the app receives SIGTERM itself), skips the rest of the line once SIGTERM arrived and exits with the
 *   status of the command that was running.
 */

/** `NAME=value` at the start of a line; the value may hold quoted parts and escapes but no bare whitespace. */
const ASSIGNMENT =
  /^[A-Za-z_][A-Za-z0-9_]*=(?:[^\s'"\\`$;&|<>()]|\$[A-Za-z_{][A-Za-z0-9_}]*|'[^']*'|"(?:[^"\\`]|\\.)*"|\\.)*(?:\s+|$)/;

/** Shell operators and constructs that make a command line compound (outside of a simple word). */
const OPERATORS = /[;&|<>()`\n\r]|\$\(/;

/** First words that are shell keywords or builtins, which `exec` cannot run. */
const SHELL_WORDS = new Set([
  '!',
  '{',
  '}',
  '.',
  ':',
  'case',
  'cd',
  'do',
  'done',
  'elif',
  'else',
  'esac',
  'eval',
  'exec',
  'exit',
  'export',
  'fi',
  'for',
  'function',
  'if',
  'read',
  'return',
  'set',
  'shift',
  'source',
  'then',
  'trap',
  'ulimit',
  'umask',
  'unset',
  'until',
  'wait',
  'while',
]);

/** The shape of a command line: see the module comment. */
export type CommandShape = 'simple' | 'compound';

/** Splits leading `NAME=value` assignments from the rest of a command line. */
function splitAssignments(command: string): { assignments: string; rest: string } {
  let rest = command.trimStart();
  let assignments = '';
  for (let m = ASSIGNMENT.exec(rest); m; m = ASSIGNMENT.exec(rest)) {
    assignments += /\s$/.test(m[0]) ? m[0] : `${m[0]} `;
    rest = rest.slice(m[0].length);
  }
  return { assignments, rest };
}

/** Whether a command line can be `exec`ed (simple) or needs the shell to stay (compound). */
export function commandShape(command: string): CommandShape {
  const { rest } = splitAssignments(command);
  if (rest.trim() === '' || OPERATORS.test(rest)) return 'compound';
  const first = rest.split(/\s+/, 1)[0] ?? '';
  if (SHELL_WORDS.has(first)) return 'compound';
  return 'simple';
}

/**
 * The shell script (for `/bin/sh -c`) that runs a Procfile command line with `bash -c`-like semantics and
 * lets the agent's signals reach the app's process (see the module comment).
 */
export function shellScript(command: string): string {
  if (commandShape(command) === 'simple') {
    const { assignments, rest } = splitAssignments(command);
    // `A=1 exec prog`: POSIX applies (and exports) assignments before the special builtin exec.
    return `${assignments}exec ${rest}`;
  }
  return `trap 'exit $?' TERM\n${command}`;
}
