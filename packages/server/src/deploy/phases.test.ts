import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PhaseContext, runAfterSwitch, runBeforeSwitch } from './phases.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'phases-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function ctx(releaseCommand: string | null, appJson: unknown, lines: string[]): PhaseContext {
  return {
    app: {} as PhaseContext['app'],
    release: {
      dir,
      artifact: { kind: 'directory', path: dir },
      env: { BUILD_VAR: 'b' },
      config_env: { GREETING: 'hi' },
      release_command: releaseCommand,
      app_json: appJson,
    } as unknown as PhaseContext['release'],
    say: async (line) => {
      lines.push(line);
    },
    signal: new AbortController().signal,
  };
}

describe('release phases', () => {
  it('runs the release command then predeploy in the release dir with the env, sh -c semantics', async () => {
    const lines: string[] = [];
    await runBeforeSwitch(
      ctx(
        "X=1 sh -c 'echo release $X $GREETING' && echo rel > r.txt",
        { scripts: { dokku: { predeploy: 'echo pre $BUILD_VAR; cat r.txt' } } },
        lines,
      ),
    );
    const out = lines.join('\n');
    expect(out).toMatch(/release 1 hi/);
    expect(out.indexOf('release 1 hi')).toBeLessThan(out.indexOf('pre b'));
    expect(out).toMatch(/\n\s+rel$/m);
    expect(await readFile(join(dir, 'r.txt'), 'utf8')).toBe('rel\n');
  });
  it('a failing release command aborts with a release-phase error and skips predeploy', async () => {
    const lines: string[] = [];
    await expect(
      runBeforeSwitch(ctx('echo boom; exit 3', { scripts: { dokku: { predeploy: 'echo never' } } }, lines)),
    ).rejects.toMatchObject({ code: 'MINIPAAS_ERR_RELEASE_PHASE_FAILED' });
    expect(lines.join('\n')).toMatch(/exited with code 3/);
    expect(lines.join('\n')).not.toMatch(/never/);
  });
  it('postdeploy failures are logged, not thrown; both Dokku and Heroku scripts run', async () => {
    const lines: string[] = [];
    await runAfterSwitch(
      ctx(
        null,
        { scripts: { dokku: { postdeploy: 'exit 1' }, postdeploy: { command: 'echo heroku-post' } } },
        lines,
      ),
    );
    expect(lines.join('\n')).toMatch(/postdeploy exited with code 1/);
    expect(lines.join('\n')).toMatch(/heroku-post/);
  });
});
