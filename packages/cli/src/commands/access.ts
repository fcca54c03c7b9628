/**
 * Access control from the CLI (docs/security.md), everything through the API so it works against a
 * remote platform too:
 *   users, users:create EMAIL, users:disable USER, users:enable USER
 *   teams, teams:create NAME, teams:members TEAM, teams:add-member TEAM USER --role R,
 *   teams:remove-member TEAM USER
 *   tokens, tokens:create NAME [--role R] [--project P] [--expires 30d|DATE], tokens:revoke ID
 *   audit [-f] [--action A] [--actor U] [--outcome O] [--team T] [--project P] [--since DATE] [-n N]
 */
import type { Command } from 'commander';
import { ApiError } from '../api-client.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, cell, colors, json, line, table } from '../output.ts';
import { sleep } from '../platform.ts';

const ROLES = ['viewer', 'developer', 'admin', 'owner'];
const seg = (s: string) => encodeURIComponent(s);

function role(r: string | undefined): string | undefined {
  if (r !== undefined && !ROLES.includes(r))
    throw new CliError(`bad role ${JSON.stringify(r)}: use ${ROLES.join(', ')}`);
  return r;
}

interface UserView {
  id: string;
  email: string;
  name: string;
  disabled: boolean;
  hasPassword: boolean;
  createdAt: string;
  teams: { slug: string; role: string }[];
}
interface TeamView {
  id: string;
  name: string;
  slug: string;
  role?: string;
  createdAt: string;
}
interface MemberView {
  userId: string;
  email: string;
  name: string;
  role: string;
  disabled: boolean;
}
interface TokenView {
  id: string;
  name: string;
  role: string;
  projectId: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
}
interface AuditView {
  id: string;
  at: string;
  actor: string | null;
  action: string;
  method: string | null;
  path: string | null;
  targetType: string | null;
  targetId: string | null;
  outcome: string;
  statusCode: number | null;
  ip: string | null;
}

/** The first line of stdin (`--password-stdin`, like `docker login`). */
async function passwordFromStdin(): Promise<string> {
  if (process.stdin.isTTY)
    throw new CliError('--password-stdin reads the password from a pipe: echo "$PW" | minipaas ...');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const pw = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (!pw) throw new CliError('no password on stdin');
  return pw;
}

/** `30d`, `12h`, `90m` or an ISO date → an ISO date-time. */
export function expiryOf(text: string, now = Date.now()): string {
  const m = /^(\d{1,5})([dhm])$/.exec(text);
  if (m) {
    const n = Number(m[1]);
    const ms = m[2] === 'd' ? 86_400_000 : m[2] === 'h' ? 3_600_000 : 60_000;
    return new Date(now + n * ms).toISOString();
  }
  const d = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(d.getTime()))
    throw new CliError(`bad --expires ${JSON.stringify(text)}: use 30d, 12h, 90m or a date like 2027-01-31`);
  return d.toISOString();
}

function auditRow(e: AuditView): string[] {
  return [
    e.at.replace('T', ' ').slice(0, 19),
    e.actor ?? '-',
    e.action,
    e.targetType ? `${e.targetType}:${e.targetId ?? ''}` : (e.path ?? ''),
    e.outcome,
    String(e.statusCode ?? ''),
    e.ip ?? '',
  ];
}
const AUDIT_HEADERS = ['TIME', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME', 'STATUS', 'FROM'];

export function registerAccess(program: Command, ctx: Context): void {
  // ---- users ------------------------------------------------------------------------------------
  program
    .command('users')
    .description('list the users of the platform (platform admins)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas users\n  $ minipaas users --json')
    .action(async (opts: { json?: boolean }, c: Command) => {
      const { users } = await (await clientFor(c, ctx)).request<{ users: UserView[] }>(
        'GET',
        '/api/v1/users',
      );
      if (opts.json) return json(ctx.out, { users });
      ctx.out.out(
        `${table(
          ['EMAIL', 'NAME', 'TEAMS', 'PASSWORD', 'STATUS', 'CREATED'],
          users.map((u) => [
            u.email,
            cell(u.name),
            u.teams.map((t) => `${t.slug}:${t.role}`).join(' ') || '-',
            u.hasPassword ? 'yes' : 'no',
            u.disabled ? 'disabled' : 'active',
            ago(u.createdAt),
          ]),
        )}\n`,
      );
    });

  program
    .command('users:create <email>')
    .description('create a user (platform owners), optionally with a password and a team role')
    .option('--name <name>', 'display name')
    .option('--password-stdin', 'read a password from stdin (first line); without it: no password login')
    .option('--team <team>', 'add the user to this team (id or slug; default team "default" with --role)')
    .option('--role <role>', 'role in the team: viewer, developer, admin or owner')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Passwords have at least 12 characters and are stored as scrypt hashes.

Examples:
  $ minipaas users:create ada@example.com --name Ada --role developer
  $ minipaas users:create bob@example.com --team shop --role viewer
  $ echo "$PASSWORD" | minipaas users:create ci@example.com --password-stdin --json`,
    )
    .action(
      async (
        email: string,
        opts: { name?: string; passwordStdin?: boolean; team?: string; role?: string; json?: boolean },
        c: Command,
      ) => {
        const body: Record<string, string> = { email };
        if (opts.name) body.name = opts.name;
        if (opts.team) body.team = opts.team;
        if (role(opts.role)) body.role = opts.role as string;
        if (opts.passwordStdin) body.password = await passwordFromStdin();
        const u = await (await clientFor(c, ctx)).request<UserView>('POST', '/api/v1/users', { json: body });
        if (opts.json) return json(ctx.out, u);
        line(
          ctx.out,
          `Created user ${u.email}${u.teams.length ? ` (${u.teams.map((t) => `${t.role} in ${t.slug}`).join(', ')})` : ''}.`,
        );
      },
    );

  for (const [name, disabled] of [
    ['users:disable', true],
    ['users:enable', false],
  ] as const) {
    program
      .command(`${name} <user>`)
      .description(
        disabled ? 'disable a user: their sessions and tokens stop working' : 'enable a disabled user',
      )
      .option('--json', 'print JSON')
      .addHelpText('after', `\nExamples:\n  $ minipaas ${name} ada@example.com`)
      .action(async (user: string, opts: { json?: boolean }, c: Command) => {
        const u = await (await clientFor(c, ctx)).request<UserView>('PATCH', `/api/v1/users/${seg(user)}`, {
          json: { disabled },
        });
        if (opts.json) return json(ctx.out, u);
        line(ctx.out, `${disabled ? 'Disabled' : 'Enabled'} ${u.email}.`);
      });
  }

  // ---- teams ------------------------------------------------------------------------------------
  program
    .command('teams')
    .description('list your teams and your role in each')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas teams\n  $ minipaas teams --json')
    .action(async (opts: { json?: boolean }, c: Command) => {
      const { teams } = await (await clientFor(c, ctx)).request<{ teams: TeamView[] }>(
        'GET',
        '/api/v1/teams',
      );
      if (opts.json) return json(ctx.out, { teams });
      ctx.out.out(
        `${table(
          ['SLUG', 'NAME', 'ROLE', 'CREATED'],
          teams.map((t) => [t.slug, cell(t.name), t.role ?? '-', ago(t.createdAt)]),
        )}\n`,
      );
    });

  program
    .command('teams:create <name>')
    .description('create a team; you become its owner')
    .option('--slug <slug>', 'URL-safe id (default: derived from the name)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas teams:create "Shop team" --slug shop')
    .action(async (name: string, opts: { slug?: string; json?: boolean }, c: Command) => {
      const t = await (await clientFor(c, ctx)).request<TeamView>('POST', '/api/v1/teams', {
        json: { name, ...(opts.slug ? { slug: opts.slug } : {}) },
      });
      if (opts.json) return json(ctx.out, t);
      line(ctx.out, `Created team ${t.slug} (${cell(t.name)}); you are its owner.`);
      line(ctx.out, `Create its projects with: minipaas projects create NAME --team ${t.slug}`);
    });

  program
    .command('teams:members <team>')
    .description("list a team's members and their roles")
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas teams:members shop')
    .action(async (team: string, opts: { json?: boolean }, c: Command) => {
      const { members } = await (await clientFor(c, ctx)).request<{ members: MemberView[] }>(
        'GET',
        `/api/v1/teams/${seg(team)}/members`,
      );
      if (opts.json) return json(ctx.out, { members });
      ctx.out.out(
        `${table(
          ['EMAIL', 'NAME', 'ROLE', 'STATUS'],
          members.map((m) => [m.email, cell(m.name), m.role, m.disabled ? 'disabled' : 'active']),
        )}\n`,
      );
    });

  program
    .command('teams:add-member <team> <user>')
    .description('add a user to a team or change their role (admins; owners for the owner role)')
    .requiredOption('--role <role>', 'viewer, developer, admin or owner')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
USER is an email or a user id. Giving someone the owner role transfers ownership (owners only).

Examples:
  $ minipaas teams:add-member shop ada@example.com --role developer
  $ minipaas teams:add-member shop bob@example.com --role owner`,
    )
    .action(async (team: string, user: string, opts: { role: string; json?: boolean }, c: Command) => {
      const m = await (await clientFor(c, ctx)).request<MemberView>(
        'PUT',
        `/api/v1/teams/${seg(team)}/members`,
        {
          json: { user, role: role(opts.role) },
        },
      );
      if (opts.json) return json(ctx.out, m);
      line(ctx.out, `${m.email} is ${m.role} in ${team}.`);
    });

  program
    .command('teams:remove-member <team> <user>')
    .description('remove a user from a team (a team keeps at least one owner)')
    .addHelpText('after', '\nExamples:\n  $ minipaas teams:remove-member shop ada@example.com')
    .action(async (team: string, user: string, _opts: unknown, c: Command) => {
      await (await clientFor(c, ctx)).request('DELETE', `/api/v1/teams/${seg(team)}/members/${seg(user)}`);
      line(ctx.out, `Removed ${user} from ${team}.`);
    });

  // ---- tokens -----------------------------------------------------------------------------------
  program
    .command('tokens')
    .description('list your API tokens (never their secret)')
    .option('--all', "everyone's tokens (platform admins)")
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas tokens\n  $ minipaas tokens --all --json')
    .action(async (opts: { all?: boolean; json?: boolean }, c: Command) => {
      const { tokens } = await (await clientFor(c, ctx)).request<{ tokens: TokenView[] }>(
        'GET',
        '/api/v1/tokens',
        {
          query: { all: opts.all ? 'true' : undefined },
        },
      );
      if (opts.json) return json(ctx.out, { tokens });
      const state = (t: TokenView) =>
        t.revokedAt ? 'revoked' : t.expiresAt && Date.parse(t.expiresAt) <= Date.now() ? 'expired' : 'active';
      ctx.out.out(
        `${table(
          ['ID', 'NAME', 'ROLE', 'PROJECT', 'STATE', 'EXPIRES', 'LAST USED', 'CREATED'],
          tokens.map((t) => [
            t.id,
            cell(t.name),
            t.role,
            t.projectId ?? '*',
            state(t),
            t.expiresAt ? t.expiresAt.slice(0, 16).replace('T', ' ') : 'never',
            t.lastUsedAt ? ago(t.lastUsedAt) : 'never',
            ago(t.createdAt),
          ]),
        )}\n`,
      );
    });

  program
    .command('tokens:create <name>')
    .description('create an API token for yourself; it is shown once')
    .option('--role <role>', 'at most your own role (default: your highest role)')
    .option('--project <project>', 'only this project (id or slug)')
    .option('--expires <when>', 'expiry: 30d, 12h, 90m or a date such as 2027-01-31 (default: never)')
    .option('--json', 'print JSON (includes the token)')
    .addHelpText(
      'after',
      `
Examples:
  $ minipaas tokens:create ci --role developer --project shop --expires 90d
  $ minipaas tokens:create laptop --json`,
    )
    .action(
      async (
        name: string,
        opts: { role?: string; project?: string; expires?: string; json?: boolean },
        c: Command,
      ) => {
        const body: Record<string, string> = { name };
        if (role(opts.role)) body.role = opts.role as string;
        if (opts.project) body.project = opts.project;
        if (opts.expires) body.expiresAt = expiryOf(opts.expires);
        const t = await (await clientFor(c, ctx)).request<TokenView & { token: string }>(
          'POST',
          '/api/v1/tokens',
          {
            json: body,
          },
        );
        if (opts.json) return json(ctx.out, t);
        line(
          ctx.out,
          `Created token ${t.name} (${t.id}), role ${t.role}${t.projectId ? `, project ${t.projectId}` : ''}${t.expiresAt ? `, expires ${t.expiresAt}` : ''}.`,
        );
        line(ctx.out, 'It is shown only now:');
        line(ctx.out, t.token);
      },
    );

  program
    .command('tokens:revoke <id>')
    .description('revoke an API token (yours; platform owners: anyone’s)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas tokens:revoke 0b6f3c1e-9a7d-4a43-8a31-2d1c1f0f4a55')
    .action(async (id: string, opts: { json?: boolean }, c: Command) => {
      const t = await (await clientFor(c, ctx)).request<TokenView>('DELETE', `/api/v1/tokens/${seg(id)}`);
      if (opts.json) return json(ctx.out, t);
      line(ctx.out, `Revoked token ${t.name} (${t.id}).`);
    });

  // ---- audit ------------------------------------------------------------------------------------
  program
    .command('audit')
    .description('show the audit log: who changed what, and refused attempts (platform admins)')
    .option('-f, --follow', 'keep printing new entries (Ctrl-C to stop)')
    .option('-n, --num <n>', 'how many recent entries', '50')
    .option('--action <action>', 'only this action, or a prefix such as app:*')
    .option('--actor <user>', 'only this user (email or id) or token name')
    .option('--outcome <outcome>', 'success, denied or failure')
    .option('--team <team>', 'only this team')
    .option('--project <project>', 'only this project')
    .option('--since <date>', 'only entries since this date (ISO)')
    .option('--json', 'print JSON (one entry per line with --follow)')
    .addHelpText(
      'after',
      `
Examples:
  $ minipaas audit
  $ minipaas audit --outcome denied -n 20
  $ minipaas audit --action 'app:*' --actor ada@example.com -f`,
    )
    .action(
      async (
        opts: {
          follow?: boolean;
          num: string;
          action?: string;
          actor?: string;
          outcome?: string;
          team?: string;
          project?: string;
          since?: string;
          json?: boolean;
        },
        c: Command,
      ) => {
        const n = Number(opts.num);
        if (!Number.isInteger(n) || n < 1 || n > 1000)
          throw new CliError('-n must be a whole number from 1 to 1000');
        const since = opts.since ? expiryOf(opts.since) : undefined;
        const query = {
          action: opts.action,
          actor: opts.actor,
          outcome: opts.outcome,
          team: opts.team,
          project: opts.project,
          since,
          limit: n,
        };
        const client = await clientFor(c, ctx);
        if (!opts.follow) {
          const { entries } = await client.request<{ entries: AuditView[] }>('GET', '/api/v1/audit', {
            query,
          });
          if (opts.json) return json(ctx.out, { entries });
          ctx.out.out(`${table(AUDIT_HEADERS, entries.reverse().map(auditRow))}\n`);
          return;
        }
        const abort = new AbortController();
        const stop = () => abort.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const c2 = colors(ctx.out.isTTY);
        let after: string | undefined;
        try {
          while (!abort.signal.aborted) {
            try {
              for await (const ev of client.events(
                '/api/v1/audit',
                { ...query, follow: 'true', ...(after ? { after } : {}) },
                abort.signal,
              )) {
                if (ev.event !== 'message') continue;
                const e = JSON.parse(ev.data) as AuditView;
                after = e.id;
                if (opts.json) ctx.out.out(`${JSON.stringify(e)}\n`);
                else {
                  const row = auditRow(e);
                  const paint = e.outcome === 'success' ? (s: string) => s : c2.red;
                  line(ctx.out, paint(row.join('  ')));
                }
              }
            } catch (err) {
              if (abort.signal.aborted) return;
              if (err instanceof ApiError) throw err;
            }
            if (abort.signal.aborted) return;
            ctx.out.err(c2.dim('-- audit stream interrupted; reconnecting --\n'));
            await sleep(1000);
          }
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      },
    );
}
