/**
 * Deploy from git end to end (issue 10): the real platform (`minipaas up`), the real CLI and a real
 * `git daemon` serving repositories the test commits to. `apps:create --git` then `git:build`, and
 * `deploy --app --git URL#ref`, each serving the commit through the router.
 */
import { execFile } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GitServer, procfileApp, startGitServer } from '../helpers/git-repos.ts';
import { type Platform, routerGet, startPlatform, waitFor } from '../helpers/platform.ts';

let platform: Platform;
let gitd: GitServer;

beforeAll(async () => {
  gitd = await startGitServer();
  platform = await startPlatform();
}, 90_000);

afterAll(async () => {
  await platform?.stop();
  await gitd?.close();
});

const serve = async (app: string) => (await routerGet(platform.routerPort, '/', `${app}.localhost`)).body;

describe('deploy from git through the CLI', () => {
  it('apps:create --git, git:build, and deploy --git URL#ref', async () => {
    const repo = await gitd.repo('cli-app');
    const sha1 = await repo.commit(procfileApp('from git v1'), 'v1 of the cli app');
    const created = await platform.cli([
      'apps:create',
      'gcli',
      '--git',
      gitd.url('cli-app'),
      '--ref',
      'main',
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('minipaas git:build gcli');
    const shown = await platform.cli(['git', 'gcli', '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      url: gitd.url('cli-app'),
      ref: 'main',
      credential: null,
    });

    const built = await platform.cli(['git:build', 'gcli'], { timeoutMs: 180_000 });
    expect(built.code, built.stdout + built.stderr).toBe(0);
    expect(built.stdout).toContain(`${sha1.slice(0, 7)} v1 of the cli app`);
    expect(built.stdout).toMatch(/-----> Fetching|Release v1 created/);
    expect(await serve('gcli')).toBe('from git v1');

    // deploy --git on a new app with a branch in the URL.
    await repo.commit(procfileApp('feature branch'), 'feature work', 'feature');
    const d = await platform.cli(
      ['deploy', '--app', 'gcli2', '--git', `${gitd.url('cli-app')}#feature`, '--json'],
      {
        timeoutMs: 180_000,
      },
    );
    expect(d.code, d.stdout + d.stderr).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ status: 'running', source: 'git' });
    expect(await serve('gcli2')).toBe('feature branch');
    const rel = await platform.api<{ releases: Array<{ source: string; commit: { message: string } }> }>(
      'GET',
      '/api/v1/apps/gcli2/releases',
    );
    expect(rel.body.releases[0]).toMatchObject({ source: 'git', commit: { message: 'feature work' } });

    // Bad input: one readable line, non-zero exit.
    const bad = await platform.cli(['deploy', '--app', 'gcli3', '--git', 'file:///etc#main']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/only https, http, ssh and git/);
  }, 300_000);

  it('git:remote --add, then git push deploys with the deploy log in the push output', async () => {
    const work = await mkdtemp(join(tmpdir(), 'mp-e2e-push-'));
    try {
      const env = {
        ...platform.env,
        GIT_TERMINAL_PROMPT: '0',
        GIT_AUTHOR_NAME: 't',
        GIT_AUTHOR_EMAIL: 't@e',
        GIT_COMMITTER_NAME: 't',
        GIT_COMMITTER_EMAIL: 't@e',
      };
      const git = (args: string[]) =>
        new Promise<{ code: number; out: string }>((resolve) =>
          execFile('git', args, { cwd: work, env, timeout: 180_000 }, (err, stdout, stderr) =>
            resolve({ code: err ? Number(err.code) || 1 : 0, out: stdout + stderr }),
          ),
        );
      await git(['init', '-q', '-b', 'main']);
      for (const [f, body] of Object.entries(procfileApp('pushed through the CLI remote')))
        await writeFile(join(work, f), body);
      await git(['add', '-A']);
      await git(['commit', '-q', '-m', 'push me']);
      expect((await platform.cli(['apps:create', 'gpush'])).code).toBe(0);
      const printed = await platform.cli(['git:remote', 'gpush']);
      expect(printed.stdout.trim()).toBe(`${platform.apiUrl}/git/gpush.git`);
      const added = await platform.cli(['git:remote', 'gpush', '--add'], { cwd: work });
      expect(added.code, added.stderr).toBe(0);
      expect((await git(['remote', 'get-url', 'minipaas'])).out.trim()).toBe(
        `${platform.apiUrl}/git/gpush.git`,
      );
      // The token is not in the repository's config (the CLI is the credential helper).
      expect((await git(['config', '--list', '--local'])).out).not.toContain(platform.token);
      const pushed = await git(['push', 'minipaas', 'main']);
      expect(pushed.code, pushed.out).toBe(0);
      expect(pushed.out).toMatch(/remote: -----> Deploying [0-9a-f]{7} \(push me\) to gpush/);
      expect(pushed.out).toMatch(/remote: -----> v1 is live/);
      expect(await serve('gpush')).toBe('pushed through the CLI remote');

      // Previews: a pushed branch becomes gpush-try, listed by `previews`; deleting the branch removes it.
      expect((await platform.cli(['previews:enable', 'gpush'])).code).toBe(0);
      const branch = await git(['push', 'minipaas', 'main:refs/heads/try']);
      expect(branch.code, branch.out).toBe(0);
      expect(branch.out).toMatch(/remote: -----> Preview of try: deploying/);
      expect(await serve('gpush-try')).toBe('pushed through the CLI remote');
      const listed = JSON.parse((await platform.cli(['previews', 'gpush', '--json'])).stdout) as {
        previews: Array<{ app: string; branch: string }>;
      };
      expect(listed.previews).toMatchObject([{ app: 'gpush-try', branch: 'try' }]);
      expect((await platform.cli(['previews', 'gpush'])).stdout).toMatch(/gpush-try\s+try\s+-\s+running/);
      expect((await git(['push', 'minipaas', ':refs/heads/try'])).code).toBe(0);
      expect((await platform.cli(['previews', 'gpush'])).stdout).toContain('gpush has no previews.');

      // Auto-sync settings through the CLI.
      expect((await platform.cli(['git:sync', 'gpush', '30'])).code).toBe(0);
      expect(JSON.parse((await platform.cli(['git', 'gpush', '--json'])).stdout)).toMatchObject({
        url: null,
        sync: { intervalSeconds: 30 },
        previews: true,
      });
      const badSync = await platform.cli(['git:sync', 'gpush', '1']);
      expect(badSync.code).not.toBe(0);
      expect(badSync.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 300_000);

  it('webhooks APP prints a URL and secret; a signed GitHub push over HTTP deploys and is in the delivery log', async () => {
    const repo = await gitd.repo('hooked-e2e');
    await repo.commit(procfileApp('hook v1'), 'hook v1');
    expect((await platform.cli(['apps:create', 'ghook', '--git', gitd.url('hooked-e2e')])).code).toBe(0);
    const created = await platform.cli(['webhooks', 'ghook', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const hook = JSON.parse(created.stdout) as { url: string; secret: string; branch: string };
    expect(hook.url).toBe(`${platform.apiUrl}/api/v1/webhooks/ghook/${hook.secret}`);
    expect(hook.branch).toBe('main');
    const sha = await repo.commit(procfileApp('hook v2'), 'hook v2');
    const body = JSON.stringify({ ref: 'refs/heads/main', after: sha });
    const send = (signature: string) =>
      fetch(hook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'push',
          'x-github-delivery': randomUUID(),
          'x-hub-signature-256': signature,
        },
        body,
      });
    expect((await send('sha256=00')).status).toBe(401);
    const ok = await send(`sha256=${createHmac('sha256', hook.secret).update(body).digest('hex')}`);
    expect(ok.status).toBe(202);
    await waitFor(
      'the webhook deploy',
      async () => ((await serve('ghook')) === 'hook v2' ? true : null),
      120_000,
    );
    const log = await platform.cli(['webhooks:deliveries', 'ghook', '--json']);
    const deliveries = (
      JSON.parse(log.stdout) as {
        deliveries: Array<{ outcome: string; commit: string | null; reason: string }>;
      }
    ).deliveries;
    expect(deliveries.map((d) => d.outcome)).toEqual(['accepted', 'rejected']);
    expect(deliveries[0]?.commit).toBe(sha);
    expect(deliveries[1]?.reason).toMatch(/wrong signature/);
    const table = await platform.cli(['webhooks:deliveries', 'ghook']);
    expect(table.stdout).toMatch(/github\s+push\s+[0-9a-f]{7}\s+accepted/);
    expect((await platform.cli(['webhooks:regenerate', 'ghook', '--json'])).code).toBe(0);
    const project = await platform.cli(['webhooks:project', 'default', '--json']);
    expect(project.code, project.stderr).toBe(0);
    expect(JSON.parse(project.stdout).url).toMatch(
      new RegExp(`^${platform.apiUrl}/api/webhooks/default/[A-Za-z0-9_-]{43}$`),
    );
    expect(
      (await send(`sha256=${createHmac('sha256', hook.secret).update(body).digest('hex')}`)).status,
    ).toBe(401);
  }, 300_000);
});
