/** `minipaas logs APP [-n N] [-f] [--process TYPE]`. */
import type { LogLine } from '@minipaas/core';
import type { Command } from 'commander';
import { ApiError } from '../api-client.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { colors, type Output } from '../output.ts';
import { sleep } from '../platform.ts';

export function formatLogLine(o: Output, l: LogLine): string {
  const c = colors(o.isTTY);
  const text = l.stream === 'stderr' ? c.red(l.line) : l.stream === 'system' ? c.dim(l.line) : l.line;
  return `${c.dim(l.ts)} ${c.byKey(l.instance)(l.instance)} | ${text}\n`;
}

interface LogsOptions {
  num: string;
  follow?: boolean;
  process?: string;
  json?: boolean;
}

export function registerLogs(program: Command, ctx: Context): void {
  program
    .command('logs')
    .description("show an app's logs (stdout, stderr and platform events of its instances)")
    .argument('<app>', 'app name or id')
    .option('-n, --num <lines>', 'how many recent lines', '100')
    .option('-f, --follow', 'keep streaming new lines (Ctrl-C to stop)')
    .option('-p, --process <type>', 'only this process type, e.g. web')
    .option('--json', 'print JSON (one LogLine object per line with --follow)')
    .addHelpText(
      'after',
      `
Each line is printed as "timestamp instance | text".

Examples:
  $ minipaas logs hello
  $ minipaas logs hello -n 20 -f
  $ minipaas logs hello --process worker --json`,
    )
    .action(async (app: string, opts: LogsOptions, cmd: Command) => {
      const tail = Number(opts.num);
      if (!Number.isInteger(tail) || tail < 0 || tail > 10000)
        throw new CliError('-n must be a whole number from 0 to 10000');
      const client = await clientFor(cmd, ctx);
      const o = ctx.out;
      if (!opts.follow) {
        const lines = await client.logs(app, { tail, process: opts.process });
        if (opts.json) {
          o.out(`${JSON.stringify({ lines }, null, 2)}\n`);
          return;
        }
        for (const l of lines) o.out(formatLogLine(o, l));
        return;
      }
      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // Reconnects (without replaying lines) when the control plane restarts; gives up after 60s.
      let firstTail = tail;
      let lostSince: number | undefined;
      try {
        while (!abort.signal.aborted) {
          try {
            for await (const ev of client.followLogs(
              app,
              { tail: firstTail, process: opts.process },
              abort.signal,
            )) {
              lostSince = undefined;
              if (ev.event !== 'message' && ev.event !== 'log') continue;
              let l: LogLine;
              try {
                l = JSON.parse(ev.data) as LogLine;
              } catch {
                continue;
              }
              o.out(opts.json ? `${JSON.stringify(l)}\n` : formatLogLine(o, l));
            }
          } catch (err) {
            if (abort.signal.aborted) return;
            if (err instanceof ApiError) throw err;
            lostSince ??= Date.now();
            if (Date.now() - lostSince > 60_000) throw err;
          }
          if (abort.signal.aborted) return;
          lostSince ??= Date.now();
          firstTail = 0;
          o.err(colors(o.isTTY).dim('-- log stream interrupted; reconnecting --\n'));
          await sleep(1000);
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
