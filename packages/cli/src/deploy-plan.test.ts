import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argsAfterDashDash, planDeploy } from './deploy-plan.ts';

let cwd: string;
beforeAll(() => {
  cwd = mkdtempSync(join(tmpdir(), 'minipaas-plan-'));
  mkdirSync(join(cwd, 'hello-node'));
  writeFileSync(join(cwd, 'my-app'), '#!/bin/sh\n');
  chmodSync(join(cwd, 'my-app'), 0o755);
});
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('argsAfterDashDash', () => {
  it('returns what follows -- when commander collected it as operands', () => {
    const argv = ['node', 'minipaas', 'deploy', '--app', 'x', '--', 'node', 'server.js', '--port', '$PORT'];
    expect(argsAfterDashDash(argv, ['node', 'server.js', '--port', '$PORT'])).toEqual([
      'node',
      'server.js',
      '--port',
      '$PORT',
    ]);
    expect(argsAfterDashDash(['node', 'minipaas', 'deploy', '.'], ['.'])).toEqual([]);
  });
});

describe('planDeploy', () => {
  it('uploads the current directory by default, app named after it', () => {
    expect(planDeploy({ operands: [], dashArgs: [], cwd: join(cwd, 'hello-node') })).toEqual({
      kind: 'upload',
      dir: join(cwd, 'hello-node'),
      app: 'hello-node',
      appDerived: true,
    });
  });

  it('uploads a directory with an explicit app and an optional command after --', () => {
    expect(
      planDeploy({ operands: ['hello-node', 'node', 'x.js'], dashArgs: ['node', 'x.js'], app: 'hi', cwd }),
    ).toEqual({
      kind: 'upload',
      dir: join(cwd, 'hello-node'),
      app: 'hi',
      appDerived: false,
      command: 'node x.js',
    });
  });

  it('deploys a quoted command after --', () => {
    const dash = ['python3', '-m', 'http.server', '$PORT'];
    expect(planDeploy({ operands: dash, dashArgs: dash, app: 'py', cwd })).toEqual({
      kind: 'command',
      command: 'python3 -m http.server $PORT',
      app: 'py',
    });
    expect(() => planDeploy({ operands: dash, dashArgs: dash, cwd })).toThrow(/--app/);
  });

  it('treats one operand that is a file or a command line as a command (seed 004)', () => {
    // a local program given by relative path is made absolute (the command runs in an empty release dir)
    expect(planDeploy({ operands: ['./my-app'], dashArgs: [], app: 'mine', cwd })).toEqual({
      kind: 'command',
      command: join(cwd, 'my-app'),
      app: 'mine',
    });
    const withArgs = planDeploy({ operands: ['./my-app --port $PORT'], dashArgs: [], app: 'm', cwd });
    expect(withArgs).toMatchObject({ command: `${join(cwd, 'my-app')} --port $PORT` });
    const missing = planDeploy({ operands: ['./bin/srv --port $PORT'], dashArgs: [], app: 'srv', cwd });
    expect(missing).toMatchObject({ kind: 'command', command: './bin/srv --port $PORT' });
    const dashed = planDeploy({ operands: ['./my-app', 'x'], dashArgs: ['./my-app', 'x'], app: 'm', cwd });
    expect(dashed).toMatchObject({ command: `${join(cwd, 'my-app')} x` });
    expect(() => planDeploy({ operands: ['./my-app'], dashArgs: [], cwd })).toThrow(/needs --app/);
  });

  it('explains a missing directory and stray operands', () => {
    expect(() => planDeploy({ operands: ['nope'], dashArgs: [], app: 'x', cwd })).toThrow(
      /nope is not a directory/,
    );
    expect(() => planDeploy({ operands: ['node', 'server.js'], dashArgs: [], app: 'x', cwd })).toThrow(
      /put it after --/,
    );
  });
});
