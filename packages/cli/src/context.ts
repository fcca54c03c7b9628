/** What every command gets: argv, env, output, and a way to build an API client from the options. */
import type { Command } from 'commander';
import { ApiClient } from './api-client.ts';
import { credentialsPath, localTarget, readCredentials, resolveTarget, type Target } from './credentials.ts';
import type { Output } from './output.ts';

export interface Context {
  /** The full process argv (commander drops what follows `--` into operands; deploy needs it raw). */
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  out: Output;
}

export interface GlobalOptions {
  url?: string;
  token?: string;
}

/** Resolves URL and token for a command (flags, env, saved login, local platform). */
export async function targetFor(cmd: Command, ctx: Context): Promise<Target> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  return resolveTarget({
    flags: { url: opts.url, token: opts.token },
    env: ctx.env,
    saved: readCredentials(credentialsPath(ctx.env)),
    local: () => localTarget(ctx.env),
  });
}

/** An API client for a command. */
export async function clientFor(cmd: Command, ctx: Context): Promise<ApiClient> {
  const t = await targetFor(cmd, ctx);
  return new ApiClient({ url: t.url, token: t.token });
}
