/**
 * Deploy from git end to end (issue 10): the real platform (`minipaas up`), the real CLI and a real
 * `git daemon` serving repositories the test commits to. `apps:create --git` then `git:build`, and
 * `deploy --app --git URL#ref`, each serving the commit through the router.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GitServer, procfileApp, startGitServer } from '../helpers/git-repos.ts';
import { type Platform, routerGet, startPlatform } from '../helpers/platform.ts';

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
});
