/** Parsing of command-line operands: `web=3`, `K=V`. */
import { ENV_NAME_RE, isProcessType } from '@minipaas/core/name-patterns';
import { CliError } from './cli-error.ts';

/** Parses `web=3 worker=1` into `{web: 3, worker: 1}`. A bare number means `web`. */
export function parseScaleArgs(args: readonly string[]): Record<string, number> {
  if (args.length === 0) throw new CliError('give at least one process type and count, e.g. web=3');
  const out: Record<string, number> = {};
  for (const arg of args) {
    const m = /^(?:([^=]+)=)?(\d+)$/.exec(arg.trim());
    if (!m) throw new CliError(`invalid scale argument "${arg}": expected TYPE=COUNT, e.g. web=3`);
    const type = m[1] ?? 'web';
    if (!isProcessType(type)) throw new CliError(`invalid process type "${type}" in "${arg}"`);
    const count = Number(m[2]);
    if (count > 100) throw new CliError(`invalid count in "${arg}": at most 100 instances`);
    out[type] = count;
  }
  return out;
}

/** Parses `K=V` pairs (the value may contain `=` and be empty). */
export function parseEnvPairs(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new CliError(`invalid env var "${arg}": expected NAME=VALUE`);
    const name = arg.slice(0, eq);
    if (!ENV_NAME_RE.test(name)) {
      throw new CliError(
        `invalid env var name "${name}": use letters, digits and _ (not starting with a digit)`,
      );
    }
    out[name] = arg.slice(eq + 1);
  }
  return out;
}

/** Validates env var names given to `env:unset`. */
export function parseEnvNames(args: readonly string[]): string[] {
  if (args.length === 0) throw new CliError('give at least one env var name');
  for (const name of args) {
    if (!ENV_NAME_RE.test(name)) throw new CliError(`invalid env var name "${name}"`);
  }
  return [...args];
}

/** Commander collector for repeatable options (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
