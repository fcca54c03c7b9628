/**
 * `minipaas images:bootstrap`: builds the docker runtime's base images on this machine without a registry
 * (Debian bookworm from debootstrap, and a Node image with the platform's own Node binary). Cached by tag.
 */
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import type { Context } from '../context.ts';
import { json, line } from '../output.ts';

export function registerImages(program: Command, ctx: Context): void {
  program
    .command('images:bootstrap')
    .description('build the docker runtime base images (minipaas/base:bookworm, minipaas/node:24) locally')
    .option('--force', 'rebuild even when the images exist')
    .option('--mirror <uri>', 'Debian mirror (default: the one apt uses on this machine)')
    .option('--node <path>', 'Node binary for minipaas/node:24 (default: the one running this CLI)')
    .option('--socket <path>', 'Docker Engine API socket', '/var/run/docker.sock')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nNeeds root (debootstrap) and a running Docker engine; takes about 40 s the first time, nothing after.\n\nExamples:\n  $ minipaas images:bootstrap\n  $ minipaas images:bootstrap --force --mirror http://deb.debian.org/debian --json',
    )
    .action(
      async (opts: { force?: boolean; mirror?: string; node?: string; socket: string; json?: boolean }) => {
        // Loaded here: dockerode is only needed by this command.
        const [{ bootstrapImages }, { default: Docker }] = await Promise.all([
          import('@minipaas/runtime-docker'),
          import('dockerode'),
        ]);
        const docker = new Docker({ socketPath: opts.socket });
        await docker.ping().catch((err: Error) => {
          throw new CliError(`no Docker engine answers at ${opts.socket} (${err.message})`);
        });
        try {
          const r = await bootstrapImages({
            docker,
            ...(opts.force ? { force: true } : {}),
            ...(opts.mirror ? { mirror: opts.mirror } : {}),
            ...(opts.node ? { nodeBin: opts.node } : {}),
            onLine: (l) => ctx.out.err(`-----> ${l}\n`),
          });
          if (opts.json) return json(ctx.out, r);
          for (const i of r.images)
            line(
              ctx.out,
              `${i.ref}  ${i.built ? `built in ${(i.ms / 1000).toFixed(1)}s` : 'already present'}`,
            );
        } catch (err) {
          throw new CliError(`images:bootstrap failed: ${(err as Error).message}`);
        }
      },
    );
}
