/** Decides what `minipaas deploy` does from its operands: upload a directory, or deploy a command. */
import { statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { APP_NAME_RE } from '@minipaas/core/name-patterns';
import { CliError } from './cli-error.ts';
import { quoteArg, shellJoin } from './shell-quote.ts';

export type DeployPlan =
  | { kind: 'upload'; dir: string; app: string; appDerived: boolean; command?: string }
  | { kind: 'command'; command: string; app: string };

/** The arguments after the first `--` of argv, when they are the trailing operands commander collected. */
export function argsAfterDashDash(argv: readonly string[], operands: readonly string[]): string[] {
  const i = argv.indexOf('--');
  if (i === -1) return [];
  const rest = argv.slice(i + 1);
  if (rest.length > operands.length) return [];
  const tail = operands.slice(operands.length - rest.length);
  return tail.every((v, k) => v === rest[k]) ? rest : [];
}

/**
 * Command deploys run in an empty release directory on the server, so a program given as a relative
 * path to a local file (`./my-app`) is made absolute: on a local platform that is the same file.
 */
export function absolutizeProgram(program: string, cwd: string): string {
  if (!program.includes('/') || program.startsWith('/')) return program;
  const abs = resolve(cwd, program);
  return kindOf(abs) === 'file' ? abs : program;
}

function kindOf(path: string): 'dir' | 'file' | 'missing' {
  try {
    return statSync(path).isDirectory() ? 'dir' : 'file';
  } catch {
    return 'missing';
  }
}

/**
 * - `deploy [DIR]` uploads DIR (default `.`); the app name defaults to the directory's name.
 * - `deploy --app A -- cmd args...` deploys a command (argv shell-quoted, `$PORT` kept live).
 * - `deploy DIR --app A -- cmd...` uploads DIR and runs `cmd` as its web process.
 * - `deploy "./my-app --port $PORT" --app A` (one operand that is not a directory but an existing
 *   file or a command line with spaces) deploys that command line as written (seed 004).
 */
export function planDeploy(input: {
  operands: readonly string[];
  dashArgs: readonly string[];
  app?: string | undefined;
  cwd: string;
}): DeployPlan {
  const { operands, dashArgs, app } = input;
  const positional = operands.slice(0, operands.length - dashArgs.length);
  if (positional.length > 1) {
    throw new CliError(
      `too many arguments (${positional.join(' ')}); to deploy a command put it after --: minipaas deploy --app NAME -- ${positional.join(' ')}`,
    );
  }
  const first = positional[0];
  const dashCommand = dashArgs.length ? shellJoin(dashArgs) : undefined;
  const dashProgram = dashArgs[0];
  const dashCommandAbs =
    dashProgram === undefined
      ? undefined
      : shellJoin([absolutizeProgram(dashProgram, input.cwd), ...dashArgs.slice(1)]);

  if (first !== undefined) {
    const path = resolve(input.cwd, first);
    const kind = kindOf(path);
    if (kind !== 'dir') {
      const looksLikeCommand = kind === 'file' || /\s/.test(first.trim());
      if (!looksLikeCommand) {
        throw new CliError(
          `${first} is not a directory; to deploy a command use: minipaas deploy --app NAME -- ${first}`,
        );
      }
      if (dashCommand) throw new CliError('give either a command or arguments after --, not both');
      if (!app) throw new CliError(`deploying the command "${first}" needs --app NAME`);
      const line = first.trim();
      const word = /^\S+/.exec(line)?.[0] ?? line;
      const abs = absolutizeProgram(word, input.cwd);
      return { kind: 'command', command: abs === word ? line : quoteArg(abs) + line.slice(word.length), app };
    }
    return uploadPlan(path, app, dashCommand);
  }
  if (dashCommand) {
    if (!app) throw new CliError('deploying a command needs --app NAME');
    return { kind: 'command', command: dashCommandAbs ?? dashCommand, app };
  }
  return uploadPlan(resolve(input.cwd), app, undefined);
}

function uploadPlan(dir: string, app: string | undefined, command: string | undefined): DeployPlan {
  let name = app;
  let appDerived = false;
  if (!name) {
    const base = basename(dir)
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^[^a-z]+|-+$/g, '');
    if (!APP_NAME_RE.test(base)) throw new CliError(`cannot derive an app name from ${dir}; pass --app NAME`);
    name = base;
    appDerived = true;
  }
  const plan: DeployPlan = { kind: 'upload', dir, app: name, appDerived };
  if (command) plan.command = command;
  return plan;
}
