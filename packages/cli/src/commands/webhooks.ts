/**
 * Push webhooks (docs/git.md): `webhooks APP` (show, creating it the first time), `webhooks:regenerate`,
 * `webhooks:enable`, `webhooks:disable`, `webhooks:deliveries`.
 */
import type { Command } from 'commander';
import { ApiError } from '../api-client.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, cell, json, line, table } from '../output.ts';

interface WebhookView {
  path: string;
  secret: string | null;
  enabled: boolean;
  branch?: string;
  createdAt: string;
}

interface DeliveryView {
  receivedAt: string;
  provider: string;
  event: string | null;
  commit: string | null;
  outcome: string;
  reason: string;
  deploymentId: string | null;
}

const hookPath = (app: string) => `/api/v1/apps/${encodeURIComponent(app)}/webhook`;

export function registerWebhooks(program: Command, ctx: Context): void {
  const show = (o: { url: string }, w: WebhookView, app: string) => {
    line(ctx.out, `=== ${app} webhook${w.enabled ? '' : ' (disabled)'}`);
    line(ctx.out, `Payload URL:   ${o.url}${w.path}`);
    line(ctx.out, `Secret:        ${w.secret ?? '(hidden)'}`);
    line(ctx.out, `Content type:  application/json`);
    line(ctx.out, `Deploys:       pushes to ${w.branch}`);
    line(ctx.out, 'GitHub and Gitea/Forgejo: set the secret; GitLab: use it as the secret token.');
  };

  program
    .command('webhooks')
    .description("show an app's push webhook (URL and secret), creating it the first time")
    .argument('<app>', 'app name or id')
    .option('--branch <branch>', 'deploy pushes to this branch (default: the git source branch, else main)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Add the payload URL and secret to your repository's webhooks (push events). Deliveries are checked
(signature, token, branch) and logged: minipaas webhooks:deliveries APP.

Examples:
  $ minipaas webhooks hello
  $ minipaas webhooks hello --branch production --json`,
    )
    .action(async (app: string, opts: { branch?: string; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      let w: WebhookView;
      try {
        w = await client.request<WebhookView>('GET', hookPath(app), { query: { reveal: true } });
        if (opts.branch)
          await client.request('PATCH', hookPath(app), { json: { branch: opts.branch } }).then(async () => {
            w = await client.request<WebhookView>('GET', hookPath(app), { query: { reveal: true } });
          });
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404 && err.code === 'MINIPAAS_ERR_NOT_FOUND'))
          throw err;
        w = await client.request<WebhookView>('POST', hookPath(app), {
          json: opts.branch ? { branch: opts.branch } : {},
        });
        if (!opts.json) line(ctx.out, `Created a webhook for ${app}.`);
      }
      if (opts.json) return json(ctx.out, { ...w, url: `${client.url}${w.path}` });
      show(client, w, app);
    });

  program
    .command('webhooks:project')
    .description(
      "a project's push webhook: deploys every app of the project built from the pushed repository",
    )
    .argument('<project>', 'project id or slug')
    .option('--regenerate', 'give it a new URL token and secret')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas webhooks:project shop\n  $ minipaas webhooks:project shop --regenerate --json',
    )
    .action(async (project: string, opts: { regenerate?: boolean; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const path = `/api/v1/projects/${encodeURIComponent(project)}/webhook`;
      let w: WebhookView;
      if (opts.regenerate) w = await client.request<WebhookView>('POST', `${path}/regenerate`);
      else
        try {
          w = await client.request<WebhookView>('GET', path, { query: { reveal: true } });
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 404 && err.code === 'MINIPAAS_ERR_NOT_FOUND'))
            throw err;
          w = await client.request<WebhookView>('POST', path);
        }
      if (opts.json) return json(ctx.out, { ...w, url: `${client.url}${w.path}` });
      line(ctx.out, `=== project ${project} webhook${w.enabled ? '' : ' (disabled)'}`);
      line(ctx.out, `Payload URL:   ${client.url}${w.path}`);
      line(ctx.out, `Secret:        ${w.secret ?? '(hidden)'}`);
      line(
        ctx.out,
        'Deploys:       every app of the project whose git source is the pushed repository and branch',
      );
    });

  program
    .command('webhooks:regenerate')
    .description('give the webhook a new URL token and secret (the old ones stop working at once)')
    .argument('<app>', 'app name or id')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas webhooks:regenerate hello')
    .action(async (app: string, opts: { json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const w = await client.request<WebhookView>('POST', `${hookPath(app)}/regenerate`);
      if (opts.json) return json(ctx.out, { ...w, url: `${client.url}${w.path}` });
      show(client, w, app);
    });

  for (const [name, enabled] of [
    ['webhooks:enable', true],
    ['webhooks:disable', false],
  ] as const)
    program
      .command(name)
      .description(
        enabled ? 'deploy on webhook deliveries again' : 'ignore webhook deliveries (they are still logged)',
      )
      .argument('<app>', 'app name or id')
      .addHelpText('after', `\nExamples:\n  $ minipaas ${name} hello`)
      .action(async (app: string, _opts: unknown, c: Command) => {
        const client = await clientFor(c, ctx);
        await client.request('PATCH', hookPath(app), { json: { enabled } });
        line(ctx.out, `The webhook of ${app} is ${enabled ? 'enabled' : 'disabled'}.`);
      });

  program
    .command('webhooks:deliveries')
    .description('recent webhook deliveries: time, event, commit, outcome and why')
    .argument('<app>', 'app name or id')
    .option('-n, --limit <n>', 'how many (at most 200)', '20')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas webhooks:deliveries hello\n  $ minipaas webhooks:deliveries hello -n 100 --json',
    )
    .action(async (app: string, opts: { limit: string; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const { deliveries } = await client.request<{ deliveries: DeliveryView[] }>(
        'GET',
        `${hookPath(app)}/deliveries`,
        {
          query: { limit: opts.limit },
        },
      );
      if (opts.json) return json(ctx.out, { deliveries });
      if (deliveries.length === 0) return line(ctx.out, `No deliveries for ${app} yet.`);
      ctx.out.out(
        table(
          ['RECEIVED', 'FROM', 'EVENT', 'COMMIT', 'OUTCOME', 'REASON'],
          deliveries.map((d) => [
            ago(d.receivedAt),
            d.provider,
            cell(d.event),
            d.commit ? d.commit.slice(0, 7) : '-',
            d.outcome,
            d.reason,
          ]),
        ),
      );
    });
}
