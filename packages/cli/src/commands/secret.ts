/**
 * `minipaas secret create|delete|prune|ls` (and `secret:create`, ...): Docker secrets under
 * content-hashed names, wired into the environment's compose files. `docker-config.ts` registers the
 * same commands for Docker configs with {@link registerVersionedObjects}.
 */
import { readFileSync } from 'node:fs';
import type { ObjectKind } from '@minipaas/swarm';
import type { Command } from 'commander';
import { collect } from '../args.ts';
import { CliError } from '../cli-error.ts';
import type { Context } from '../context.ts';
import { swarm } from '../lazy-imports.ts';
import { ago, json, line, table } from '../output.ts';
import { envDir } from './shell.ts';

const DIR_HELP = 'environment directory (default: $MINIPAAS_ENV_DIR or .)';

async function readContent(file: string | undefined, kind: ObjectKind): Promise<Buffer> {
  if (file === undefined || file === '-') {
    if (process.stdin.isTTY)
      throw new CliError(`give the ${kind} as a FILE, or pipe it in: ... | minipaas ${kind} create NAME -`);
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return readFileSync(file);
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Registers `<group> create|delete|prune|ls` for secrets (group `secret`) or configs (group `config`). */
export function registerVersionedObjects(program: Command, ctx: Context, kind: ObjectKind): void {
  const what = kind === 'secret' ? 'Docker secrets' : 'Docker configs (non-sensitive files)';
  const group = program
    .command(kind)
    .description(`${what}, versioned by content hash and wired into the compose files`)
    .addHelpText(
      'after',
      `
Examples:
  $ minipaas ${kind} create ${kind === 'secret' ? 'db_password ./db_password.txt --service web' : 'nginx_conf ./nginx.conf --service web'}
  $ minipaas ${kind} prune
  $ minipaas ${kind} prune --delete`,
    );
  const both = (name: string, setup: (c: Command) => Command): void => {
    setup(group.command(name));
    setup(program.command(`${kind}:${name}`, { hidden: true }));
  };
  const example = kind === 'secret' ? 'db_password' : 'app_conf';

  both('create', (c) =>
    c
      .description(`create ${kind} NAME_<hash> from a file or stdin and point the compose files at it`)
      .argument('<name>', `${kind} name as the compose files use it`)
      .argument('[file]', 'file with the content, or - for stdin (default: stdin)')
      .option('--service <service>', `attach the ${kind} to this compose service (repeatable)`, collect)
      .option('--target <path>', 'file name or path inside the containers (with --service)')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        `
The Docker name is NAME_ plus 12 hex digits of the content's SHA-256, so a changed content is a new
${kind} and the next "minipaas deploy rollout" moves the services to it. The compose files get
${kind}s.NAME: {external: true, name: NAME_<hash>}. Creating the same content again changes nothing.

Examples:
  $ minipaas ${kind} create ${example} ./${example}.txt --service web
  $ printf 's3cret' | minipaas ${kind} create ${example} - --service web --service worker
  $ minipaas ${kind} create ${example} ./${example}.txt --json`,
      )
      .action(
        async (
          name: string,
          file: string | undefined,
          opts: { service?: string[]; target?: string; dir?: string; json?: boolean },
        ) => {
          const { createVersioned, dockerClient, loadEnvironment, validateObjectName } = await swarm();
          validateObjectName(kind, name);
          const env = loadEnvironment(envDir(opts, ctx));
          const data = await readContent(file, kind);
          const r = await createVersioned(env, dockerClient(env.docker), kind, name, data, {
            ...(opts.service ? { services: opts.service } : {}),
            ...(opts.target ? { target: opts.target } : {}),
          });
          if (opts.json) return json(ctx.out, r);
          line(ctx.out, `${r.created ? 'Created' : 'Already there:'} ${kind} ${r.dockerName}`);
          for (const f of r.patched) line(ctx.out, `  updated ${f}`);
          line(ctx.out, 'Run "minipaas deploy rollout" to move the services to it.');
        },
      ),
  );

  both('delete', (c) =>
    c
      .description(`remove every unused version of a ${kind} and its compose references`)
      .argument('<name>', `${kind} name`)
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        `
Versions still attached to a running service are kept and listed: roll out the edited compose files,
then run "minipaas ${kind} prune --delete".

Examples:
  $ minipaas ${kind} delete ${example}
  $ minipaas ${kind} delete ${example} --json`,
      )
      .action(async (name: string, opts: { dir?: string; json?: boolean }) => {
        const { deleteVersioned, dockerClient, loadEnvironment, validateObjectName } = await swarm();
        validateObjectName(kind, name);
        const env = loadEnvironment(envDir(opts, ctx));
        const r = await deleteVersioned(env, dockerClient(env.docker), kind, name);
        if (opts.json) return json(ctx.out, r);
        line(
          ctx.out,
          r.removed.length ? `Removed ${r.removed.join(', ')}` : `No unused version of ${name} to remove.`,
        );
        for (const f of r.patched) line(ctx.out, `  updated ${f}`);
        for (const k of r.kept) line(ctx.out, `  kept ${k.dockerName}: used by ${k.usedBy.join(', ')}`);
      }),
  );

  both('prune', (c) =>
    c
      .description(`list (or with --delete remove) ${kind} versions that no service uses`)
      .option('--delete', 'remove them')
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print the list as JSON')
      .addHelpText(
        'after',
        `
Only ${kind}s created by "minipaas ${kind} create" (label minipaas.name) are considered.

Examples:
  $ minipaas ${kind} prune
  $ minipaas ${kind} prune --delete`,
      )
      .action(async (opts: { delete?: boolean; dir?: string; json?: boolean }) => {
        const { dockerClient, loadEnvironment, pruneVersioned } = await swarm();
        const env = loadEnvironment(envDir(opts, ctx));
        const unused = await pruneVersioned(dockerClient(env.docker), kind, Boolean(opts.delete));
        if (opts.json) return json(ctx.out, { deleted: Boolean(opts.delete), [`${kind}s`]: unused });
        if (unused.length === 0) return line(ctx.out, `No unused ${kind}s.`);
        line(
          ctx.out,
          opts.delete
            ? `Removed ${unused.length} unused ${kind}(s):`
            : `Unused ${kind}s (remove with --delete):`,
        );
        ctx.out.out(
          table(
            ['NAME', 'VERSION', 'CREATED'],
            unused.map((v) => [v.name, v.dockerName, ago(v.createdAt)]),
          ),
        );
      }),
  );

  both('ls', (c) =>
    c
      .description(`list ${kind} versions and the services that use them`)
      .option('-C, --dir <dir>', DIR_HELP)
      .option('--json', 'print JSON')
      .addHelpText('after', `\nExamples:\n  $ minipaas ${kind} ls\n  $ minipaas ${kind} ls --json`)
      .action(async (opts: { dir?: string; json?: boolean }) => {
        const { dockerClient, listVersions, loadEnvironment } = await swarm();
        const env = loadEnvironment(envDir(opts, ctx));
        const all = await listVersions(dockerClient(env.docker), kind);
        if (opts.json) return json(ctx.out, { [`${kind}s`]: all });
        if (all.length === 0)
          return line(ctx.out, `No ${kind}s yet. Create one with: minipaas ${kind} create NAME FILE`);
        ctx.out.out(
          table(
            ['NAME', 'VERSION', 'USED BY', 'CREATED'],
            all.map((v) => [v.name, v.dockerName, v.usedBy.join(',') || '-', ago(v.createdAt)]),
          ),
        );
      }),
  );
}

export function registerSecret(program: Command, ctx: Context): void {
  registerVersionedObjects(program, ctx, 'secret');
}
