/**
 * The swarm toolkit commands through the real `minipaas` bin (child processes, no Docker daemon
 * needed): help with examples on every command and both spellings, one-line errors with a non-zero
 * exit, code init/expose/worker/job/cron producing compose that the docker CLI's stack loader accepts,
 * certs, shell's variables, and `deploy ./build` still deploying a directory.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findOnPath } from '@minipaas/swarm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CLI_BIN } from '../helpers/platform.ts';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {},
): Promise<Result> {
  return new Promise((res) => {
    const child = execFile(
      process.execPath,
      [CLI_BIN, ...args],
      { env: opts.env ?? { ...process.env, NO_COLOR: '1' }, cwd: opts.cwd, timeout: 60_000 },
      (err, stdout, stderr) =>
        res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(opts.input ?? '');
  });
}

function oneErrorLine(r: Result): string {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  return lines[0] as string;
}

describe('swarm toolkit CLI', () => {
  let work: string;
  let envDir: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'minipaas-toolkit-cli-'));
    envDir = join(work, 'prod');
    const r = await run([
      'code',
      'init',
      envDir,
      '--stack',
      'shop',
      '--docker-host',
      'tcp://127.0.0.1:2376',
      '--http-listen',
      '127.0.0.1:8080',
      '--no-https',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    writeFileSync(
      join(envDir, 'compose.yaml'),
      `# shop
services:
  web: # the storefront
    image: 127.0.0.1:5000/shop/web:1
  mailer:
    image: 127.0.0.1:5000/shop/mailer:1
    ports: ["25:25"]
  migrate:
    image: 127.0.0.1:5000/shop/web:1
  report:
    image: 127.0.0.1:5000/shop/web:1
`,
    );
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const commands = [
    ['certs', 'server'],
    ['certs', 'client'],
    ['code', 'init'],
    ['code', 'expose'],
    ['code', 'job'],
    ['code', 'worker'],
    ['code', 'cron'],
    ['secret', 'create'],
    ['secret', 'delete'],
    ['secret', 'prune'],
    ['config', 'create'],
    ['config', 'delete'],
    ['config', 'prune'],
    ['deploy', 'build'],
    ['deploy', 'rollout'],
    ['deploy', 'canary'],
    ['deploy', 'routing'],
    ['shell'],
  ];

  it.each(commands)('%s %s --help has examples, in both spellings', async (...cmd) => {
    const words = cmd.filter((w): w is string => typeof w === 'string');
    for (const form of words.length === 2 ? [words, [`${words[0]}:${words[1]}`]] : [words]) {
      const r = await run([...form, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain(`$ minipaas ${words.join(' ')}`);
    }
  });

  it('the root help lists the toolkit groups', async () => {
    const r = await run(['--help']);
    for (const g of ['certs', 'code', 'secret', 'config', 'shell'])
      expect(r.stdout).toMatch(new RegExp(`\\n  ${g}\\b`));
  });

  it('code expose/worker/job/cron edit compose.yaml in place; docker accepts the result', async () => {
    let r = await run([
      'code',
      'expose',
      'web',
      '--domain',
      'Shop.Example.com',
      '--port',
      '8080',
      '-C',
      envDir,
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ service: 'web', domain: 'shop.example.com', port: 8080 });
    r = await run(['code', 'worker', 'mailer', '-C', envDir]);
    expect(r.stdout).toContain('mailer is a worker');
    r = await run(['code', 'job', 'migrate', '-C', envDir]);
    expect(r.code).toBe(0);
    r = await run(['code:cron', 'report', '--schedule', '*/5 * * * *', '--skip-running', '-C', envDir]);
    expect(r.code, r.stderr).toBe(0);
    const text = readFileSync(join(envDir, 'compose.yaml'), 'utf8');
    expect(text).toMatch(/^# shop\n/);
    expect(text).toContain('# the storefront');
    expect(text.indexOf('# the storefront')).toBeLessThan(text.indexOf('mailer:'));
    const c = parse(text);
    expect(c.services.web.ports).toEqual([{ target: 8080, mode: 'host', protocol: 'tcp' }]);
    expect(c.services.web.deploy.update_config).toMatchObject({
      order: 'start-first',
      failure_action: 'rollback',
    });
    expect(c.services.mailer.ports).toBeUndefined();
    expect(c.services.mailer.deploy.labels['minipaas.role']).toBe('worker');
    expect(c.services.migrate.deploy.mode).toBe('replicated-job');
    expect(c.services.report.deploy).toMatchObject({
      replicas: 0,
      restart_policy: { condition: 'none' },
      labels: {
        'swarm.cronjob.enable': 'true',
        'swarm.cronjob.schedule': '*/5 * * * *',
        'swarm.cronjob.skip-running': 'true',
      },
    });
    // The docker CLI's stack loader (what `docker stack deploy` parses with) accepts the files.
    if (findOnPath('docker')) {
      const out = await new Promise<Result>((res) =>
        execFile(
          'docker',
          [
            'stack',
            'config',
            '-c',
            join(envDir, 'compose.yaml'),
            '-c',
            join(envDir, 'compose.override.yaml'),
          ],
          (err, stdout, stderr) => res({ code: err ? 1 : 0, stdout, stderr }),
        ),
      );
      // `docker stack config` exists in docker CLI >= 20.10.
      if (!/unknown command|is not a docker command/.test(out.stderr)) expect(out.stderr).toBe('');
    }
  });

  it('bad input: one error line and a non-zero exit', async () => {
    expect(oneErrorLine(await run(['code', 'expose', 'web', '-C', envDir]))).toMatch(/--domain/);
    expect(oneErrorLine(await run(['code', 'expose', 'nope', '--domain', 'a.test', '-C', envDir]))).toMatch(
      /service nope is not in/,
    );
    expect(oneErrorLine(await run(['code', 'expose', 'web', '--domain', 'a b', '-C', envDir]))).toMatch(
      /bad domain/,
    );
    expect(
      oneErrorLine(await run(['code', 'expose', 'web', '--domain', 'a.test', '--port', '0', '-C', envDir])),
    ).toMatch(/bad --port/);
    expect(oneErrorLine(await run(['code', 'cron', 'report', '--schedule', 'hourly', '-C', envDir]))).toMatch(
      /bad schedule/,
    );
    expect(oneErrorLine(await run(['code', 'init', join(work, 'x'), '--stack', 'Bad Name']))).toMatch(
      /bad stack name/,
    );
    expect(oneErrorLine(await run(['code', 'init', envDir]))).toMatch(/already exists/);
    expect(oneErrorLine(await run(['secret', 'create', 'pw', '-', '-C', join(work, 'none')]))).toMatch(
      /minipaas\.yaml not found/,
    );
    expect(
      oneErrorLine(await run(['secret', 'create', 'bad name', '-', '-C', envDir], { input: 'x' })),
    ).toMatch(/bad secret name/);
    expect(
      oneErrorLine(await run(['deploy', 'canary', 'web', '--promote', '--abort', '-C', envDir])),
    ).toMatch(/--promote or --abort/);
    expect(
      oneErrorLine(await run(['certs', 'server', '--dir', join(work, 'c0'), '--san', 'bad name!'])),
    ).toMatch(/not a DNS name/);
    expect(
      oneErrorLine(
        await run(['certs', 'client', '--dir', join(work, 'c1')], { env: { PATH: '/nonexistent' } }),
      ),
    ).toMatch(/required command not found on PATH: openssl/);
  });

  it.skipIf(!findOnPath('openssl'))(
    'certs server / client write Docker’s file names, keys 0600',
    async () => {
      const dir = join(work, 'certs');
      const s = await run([
        'certs',
        'server',
        '--dir',
        dir,
        '--san',
        'manager1.example.com',
        '--san',
        '10.0.0.5',
        '--json',
      ]);
      expect(s.stderr).toBe('');
      expect(JSON.parse(s.stdout)).toMatchObject({
        createdCa: true,
        names: ['manager1.example.com', '10.0.0.5'],
      });
      const c = await run(['certs:client', '--dir', dir]);
      expect(c.code, c.stderr).toBe(0);
      for (const f of ['ca-key.pem', 'server-key.pem', 'key.pem'])
        expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
      for (const f of ['ca.pem', 'server-cert.pem', 'cert.pem'])
        expect(statSync(join(dir, f)).isFile()).toBe(true);
      expect(oneErrorLine(await run(['certs', 'server', '--dir', dir]))).toMatch(/already exists.*--force/);
      expect((await run(['certs', 'server', '--dir', dir, '--force', '--san', 'localhost'])).code).toBe(0);
    },
  );

  it('shell exports the environment’s DOCKER_* variables (--json, --print, and a real $SHELL)', async () => {
    const j = await run(['shell', '--json', '-C', envDir]);
    expect(JSON.parse(j.stdout)).toEqual({
      DOCKER_HOST: 'tcp://127.0.0.1:2376',
      DOCKER_TLS_VERIFY: '1',
      DOCKER_CERT_PATH: join(envDir, '.certs'),
    });
    const p = await run(['shell', '--print', '-C', envDir]);
    expect(p.stdout).toContain("export DOCKER_HOST='tcp://127.0.0.1:2376'");
    const sh = await run(['shell'], {
      env: { ...process.env, SHELL: '/bin/sh', MINIPAAS_ENV_DIR: envDir, DOCKER_HOST: 'unix:///elsewhere' },
      input: 'echo "$DOCKER_HOST|$DOCKER_TLS_VERIFY|$DOCKER_CERT_PATH"\n',
    });
    expect(sh.code, sh.stderr).toBe(0);
    expect(sh.stdout.trim()).toBe(`tcp://127.0.0.1:2376|1|${join(envDir, '.certs')}`);
  });

  it('deploy build is the toolkit; deploy ./build still deploys the directory called build', async () => {
    const dev = join(work, 'dev');
    expect((await run(['code', 'init', dev])).code).toBe(0);
    writeFileSync(join(dev, 'compose.yaml'), 'services:\n  web:\n    image: busybox\n');
    const b = await run(['deploy', 'build', '-C', dev]);
    expect(oneErrorLine(b)).toMatch(/no service has a build section/);
    mkdirSync(join(work, 'build'));
    const d = await run(['deploy', './build', '--app', 'x'], { cwd: work });
    expect(oneErrorLine(d)).toMatch(/nothing to deploy: .*build has no files/);
  });
});
