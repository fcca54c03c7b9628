/** `minipaas projects` (list), `projects create`, `projects delete`. */
import type { ProjectView } from '@minipaas/core';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, cell, json, line, table } from '../output.ts';

export function registerProjects(program: Command, ctx: Context): void {
  const projects = program
    .command('projects')
    .description('list and create projects (groups of apps)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas projects\n  $ minipaas projects create "My Shop" --slug shop',
    );

  projects
    .command('list', { isDefault: true })
    .alias('ls')
    .description('list projects')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas projects --json')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const client = await clientFor(cmd, ctx);
      const list = await client.listProjects();
      if (opts.json) return json(ctx.out, { projects: list });
      ctx.out.out(
        table(
          ['SLUG', 'NAME', 'ID', 'CREATED'],
          list.map((p) => [p.slug, p.name, p.id, ago(p.createdAt)]),
        ),
      );
    });

  projects
    .command('create')
    .description('create a project')
    .argument('<name>', 'display name')
    .option('--slug <slug>', 'URL-safe id (default: derived from the name)')
    .option('--description <text>', 'description')
    .option('--team <team>', 'the team that owns it (id or slug; default: the platform team "default")')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas projects create "My Shop" --slug shop\n  $ minipaas projects create Billing --team finance',
    )
    .action(
      async (
        name: string,
        opts: { slug?: string; description?: string; team?: string; json?: boolean },
        cmd: Command,
      ) => {
        const client = await clientFor(cmd, ctx);
        const body: { name: string; slug?: string; description?: string } = { name };
        if (opts.slug) body.slug = opts.slug;
        if (opts.description) body.description = opts.description;
        const p = opts.team
          ? await client.request<ProjectView>('POST', '/api/v1/projects', {
              json: body,
              query: { team: opts.team },
            })
          : await client.createProject(body);
        if (opts.json) return json(ctx.out, p);
        line(ctx.out, `Created project ${p.slug} (${cell(p.name)}).`);
      },
    );

  projects
    .command('delete')
    .description('delete an empty project')
    .argument('<project>', 'id or slug')
    .option('--confirm <project>', 'confirm by repeating the id or slug')
    .addHelpText('after', '\nExamples:\n  $ minipaas projects delete shop --confirm shop')
    .action(async (id: string, opts: { confirm?: string }, cmd: Command) => {
      if (opts.confirm !== id) throw new CliError(`refusing to delete project ${id} without --confirm ${id}`);
      const client = await clientFor(cmd, ctx);
      await client.deleteProject(id);
      line(ctx.out, `Deleted project ${id}.`);
    });
}
