/**
 * The toolkit end to end on a real single-node swarm (the local engine), a real docker-registry and a
 * real Caddy: code init/expose/worker/job/cron produce compose that `docker stack deploy` accepts;
 * deploy build pushes; rollout serves through Caddy, with 0 failed requests during a second rollout;
 * versioned secrets move the service and prune lists only unattached versions; canary adds, aborts and
 * promotes; a broken image rolls back while the old version keeps serving.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  abortCanary,
  buildImages,
  ComposeFile,
  CronScheduler,
  createVersioned,
  cronRuns,
  cronService,
  deleteVersioned,
  exposeService,
  initEnvironment,
  jobServices,
  listVersions,
  loadEnvironment,
  promoteCanary,
  pruneVersioned,
  RoutingSync,
  removeStack,
  rollout,
  type SwarmEnvironment,
  stackServices,
  startCanary,
  workerServices,
} from '@minipaas/swarm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BASE_IMAGE,
  docker,
  ensureBaseImage,
  ensureSwarm,
  freePort,
  httpGet,
  missingForSwarm,
  removeDir,
  requestLoop,
  type Started,
  sleep,
  startCaddy,
  startRegistry,
  waitFor,
} from './helpers/lab.ts';

const why = await missingForSwarm(['docker', 'docker-registry', 'caddy', 'busybox']);
if (why && process.env.CI) throw new Error(`CI needs the swarm toolkit's components: ${why}`);

const DOMAIN = 'app.swarm.test';
const CLI_BIN = join(import.meta.dirname, '../../cli/bin/minipaas.js');

/** The real `minipaas` bin. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) =>
    execFile(process.execPath, [CLI_BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) =>
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
}

/** Writes the web app's build context: busybox httpd serving `body`, healthy unless `broken`. */
function writeApp(dir: string, body: string, broken = false): void {
  mkdirSync(join(dir, 'www'), { recursive: true });
  writeFileSync(join(dir, 'www/index.html'), body);
  writeFileSync(
    join(dir, 'Dockerfile'),
    `FROM ${BASE_IMAGE}
COPY www /www
HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1
CMD ["httpd", "-f", "-p", "${broken ? '9999' : '8080'}", "-h", "/www"]
`,
  );
}

describe.skipIf(Boolean(why))('swarm toolkit on a real swarm', () => {
  let work: string;
  let env: SwarmEnvironment;
  let leaveSwarm: (() => Promise<void>) | undefined;
  let registry: Started | undefined;
  let caddy: (Started & { admin: string }) | undefined;
  let httpPort: number;
  const stack = `mpt${randomBytes(3).toString('hex')}`;
  const built = new Set<string>();

  const get = () => httpGet(httpPort, DOMAIN);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'minipaas-swarm-'));
    leaveSwarm = await ensureSwarm(stack);
    await ensureBaseImage();
    registry = await startRegistry(join(work, 'registry'));
    mkdirSync(join(work, 'caddy'));
    caddy = await startCaddy(join(work, 'caddy'));
    httpPort = await freePort();
    initEnvironment({
      dir: join(work, 'env'),
      stack,
      registry: `127.0.0.1:${registry.port}`,
      caddyAdmin: caddy.admin,
      httpListen: [`127.0.0.1:${httpPort}`],
      automaticHttps: false,
    });
    env = loadEnvironment(join(work, 'env'));
    writeApp(join(env.dir, 'web'), 'v1\n');
    // The user's compose file, with comments the generators must keep.
    writeFileSync(
      env.mainCompose,
      `# my stack
services:
  # the web front end
  web:
    build: ./web # built by deploy build
    stop_grace_period: 3s
  worker:
    image: ${BASE_IMAGE}
    command: ["sh", "-c", "while true; do sleep 1; done"]
    stop_grace_period: 1s
  migrate:
    image: ${BASE_IMAGE}
    command: ["sh", "-c", "echo migrated"]
  report:
    image: ${BASE_IMAGE}
    command: ["sh", "-c", "date"]
`,
    );
  }, 180_000);

  afterAll(async () => {
    // Every step on its own: one failing must not leave daemons or temp dirs behind.
    const attempt = async (fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch {
        // best effort
      }
    };
    if (env) {
      await attempt(() => abortCanary(env, docker, 'web'));
      await attempt(() => removeStack(env));
      await attempt(() =>
        waitFor('stack removal', async () => (await stackServices(docker, stack)).length === 0),
      );
      // Tasks leave after their services: wait so the secrets can be removed.
      await attempt(() =>
        waitFor('tasks gone', async () => {
          const tasks = (await docker.listTasks({
            filters: JSON.stringify({ label: [`com.docker.stack.namespace=${stack}`] }),
          })) as unknown[];
          return tasks.length === 0;
        }),
      );
      await attempt(async () => {
        for (const s of (await docker.listSecrets()) as { ID: string; Spec?: { Name?: string } }[])
          if (s.Spec?.Name?.startsWith(stack)) await attempt(() => docker.getSecret(s.ID).remove());
      });
      await attempt(async () => {
        const nets = (await docker.listNetworks({
          filters: JSON.stringify({ label: [`com.docker.stack.namespace=${stack}`] }),
        })) as { Id: string }[];
        for (const n of nets) await attempt(() => docker.getNetwork(n.Id).remove());
      });
    }
    for (const img of built) await attempt(() => docker.getImage(img).remove({ force: true }));
    await attempt(async () => caddy?.stop());
    await attempt(async () => registry?.stop());
    await attempt(async () => leaveSwarm?.());
    removeDir(work);
  }, 180_000);

  it('a second run sharing the engine does not take the swarm away when it finishes', async () => {
    const release = await ensureSwarm(`${stack}-other`);
    await release();
    const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string } };
    expect(info.Swarm?.LocalNodeState).toBe('active');
  });

  it('code expose/worker/job/cron rewrite services in place and keep comments', () => {
    exposeService(env, 'web', { domain: DOMAIN, port: 8080 });
    workerServices(env, ['worker']);
    jobServices(env, ['migrate']);
    cronService(env, 'report', { schedule: '*/5 * * * *', skipRunning: true });
    // Faster health-gated updates for the test (user values win over the generator's defaults).
    const f = ComposeFile.load(env.mainCompose);
    f.set(['services', 'web', 'deploy', 'update_config', 'monitor'], '2s');
    f.set(['services', 'web', 'deploy', 'replicas'], 2);
    f.save();
    const text = readFileSync(env.mainCompose, 'utf8');
    expect(text).toMatch(/^# my stack\n/);
    expect(text).toContain('# the web front end');
    expect(text).toContain('build: ./web # built by deploy build');
    expect(text.indexOf('  web:')).toBeLessThan(text.indexOf('  worker:'));
    const doc = ComposeFile.load(env.mainCompose);
    expect(doc.get(['services', 'web', 'deploy', 'labels'])).toMatchObject({
      'minipaas.http.domain': DOMAIN,
      'minipaas.http.port': '8080',
    });
    expect(doc.get(['services', 'web', 'deploy', 'update_config', 'order'])).toBe('start-first');
    expect(doc.get(['services', 'web', 'deploy', 'update_config', 'failure_action'])).toBe('rollback');
    expect(doc.get(['services', 'migrate', 'deploy', 'mode'])).toBe('replicated-job');
    expect(doc.get(['services', 'report', 'deploy', 'replicas'])).toBe(0);
    expect(doc.get(['services', 'report', 'deploy', 'labels'])).toMatchObject({
      'swarm.cronjob.enable': 'true',
      'swarm.cronjob.schedule': '*/5 * * * *',
      'swarm.cronjob.skip-running': 'true',
    });
    expect(() => cronService(env, 'report', { schedule: 'every minute' })).toThrow(/bad schedule/);
    expect(() => exposeService(env, 'nope', { domain: DOMAIN })).toThrow(/not in/);
  });

  it('deploy build pushes to the registry; rollout serves v1 through Caddy', async () => {
    const images = await buildImages(env, docker, { tag: 'v1' });
    for (const i of images) built.add(i.image);
    expect(images).toEqual([
      { service: 'web', image: `127.0.0.1:${registry?.port}/${stack}/web:v1`, pushed: true },
    ]);
    expect(ComposeFile.load(env.overrideCompose).get(['services', 'web', 'image'])).toBe(images[0]?.image);
    // The secret the service reads, versioned.
    writeFileSync(join(work, 'pw1'), 'first');
    const s1 = await createVersioned(env, docker, 'secret', `${stack}_pw`, readFileSync(join(work, 'pw1')), {
      services: ['web'],
    });
    expect(s1.created).toBe(true);
    const c1 = await createVersioned(env, docker, 'config', `${stack}_conf`, Buffer.from('a=1\n'), {
      services: ['web'],
      target: '/etc/app.conf',
    });
    expect(c1.dockerName).toMatch(new RegExp(`^${stack}_conf_[0-9a-f]{12}$`));
    expect(s1.dockerName).toMatch(new RegExp(`^${stack}_pw_[0-9a-f]{12}$`));
    const outcomes = await rollout(env, docker, { timeoutMs: 240_000 });
    expect(outcomes.find((o) => o.service === `${stack}_web`)?.result).toBe('updated');
    await waitFor('v1 through caddy', async () => (await get()).body === 'v1\n', 30_000);
    const web = (await stackServices(docker, stack)).find((s) => s.Spec.Name === `${stack}_web`);
    const secrets =
      (web?.Spec.TaskTemplate.ContainerSpec as { Secrets?: { SecretName: string }[] } | undefined)?.Secrets ??
      [];
    expect(secrets.map((s) => s.SecretName)).toEqual([s1.dockerName]);
    // deploy routing through the CLI: one route, both tasks as upstreams
    const r = await cli(['deploy', 'routing', '--json', '-C', env.dir]);
    expect(r.stderr).toBe('');
    const routes = JSON.parse(r.stdout).routes as { domain: string; upstreams: string[] }[];
    expect(routes).toHaveLength(1);
    expect(routes[0]?.domain).toBe(DOMAIN);
    expect(routes[0]?.upstreams).toHaveLength(2);
  }, 300_000);

  it('a second secret version moves the service; prune lists only the unattached version', async () => {
    const foreign = await docker.createSecret({
      Name: `${stack}_foreign`,
      Data: Buffer.from('x').toString('base64'),
    });
    const again = await createVersioned(env, docker, 'secret', `${stack}_pw`, Buffer.from('first'));
    expect(again.created).toBe(false);
    const s2 = await createVersioned(env, docker, 'secret', `${stack}_pw`, Buffer.from('second'));
    const c2 = await createVersioned(env, docker, 'config', `${stack}_conf`, Buffer.from('a=2\n'));
    expect(s2.created).toBe(true);
    expect(s2.patched).toEqual([env.mainCompose]);
    const versions = await listVersions(docker, 'secret', `${stack}_pw`);
    expect(versions.map((v) => v.dockerName).sort()).toEqual([again.dockerName, s2.dockerName].sort());
    await rollout(env, docker, { timeoutMs: 240_000 });
    const web = (await stackServices(docker, stack)).find((s) => s.Spec.Name === `${stack}_web`);
    const secrets =
      (web?.Spec.TaskTemplate.ContainerSpec as { Secrets?: { SecretName: string }[] } | undefined)?.Secrets ??
      [];
    expect(secrets.map((s) => s.SecretName)).toEqual([s2.dockerName]);
    // Swarm keeps the old secret referenced until the old tasks are gone.
    const unused = await waitFor(
      'old version unattached',
      async () => {
        const u = (await pruneVersioned(docker, 'secret', false)).filter((v) => v.name === `${stack}_pw`);
        return u.length === 1 ? u : undefined;
      },
      30_000,
    );
    expect(unused.map((v) => v.dockerName)).toEqual([again.dockerName]);
    const unusedConfigs = await waitFor('old config unattached', async () => {
      const u = (await pruneVersioned(docker, 'config', false)).filter((v) => v.name === `${stack}_conf`);
      return u.length === 1 ? u : undefined;
    });
    expect(unusedConfigs.map((v) => v.dockerName)).not.toContain(c2.dockerName);
    // Prune is swarm-wide: versions left by other environments (or an interrupted earlier run) are
    // deleted too, so only this stack's part of the answer is checked.
    const pruned = await pruneVersioned(docker, 'config', true);
    expect(pruned.filter((v) => v.name === `${stack}_conf`).map((v) => v.dockerName)).toEqual(
      unusedConfigs.map((v) => v.dockerName),
    );
    expect(pruned.every((v) => v.usedBy.length === 0)).toBe(true);
    // The CLI's view of the same
    const ls = await cli(['secret', 'ls', '--json', '-C', env.dir]);
    const mine = (JSON.parse(ls.stdout).secrets as { dockerName: string; usedBy: string[] }[]).filter((v) =>
      v.dockerName.startsWith(`${stack}_pw_`),
    );
    expect(mine.map((v) => [v.dockerName, v.usedBy])).toEqual(
      expect.arrayContaining([
        [again.dockerName, []],
        [s2.dockerName, [`${stack}_web`]],
      ]),
    );
    const listed = (await pruneVersioned(docker, 'secret', false)).map((v) => v.dockerName);
    expect(listed).not.toContain(`${stack}_foreign`);
    expect(listed).not.toContain(s2.dockerName);
    const deleted = (await pruneVersioned(docker, 'secret', true)).map((v) => v.dockerName);
    expect(deleted).toEqual(listed);
    const left = ((await docker.listSecrets()) as { Spec: { Name: string } }[]).map((s) => s.Spec.Name);
    expect(left).toContain(s2.dockerName);
    expect(left).toContain(`${stack}_foreign`);
    expect(left).not.toContain(again.dockerName);
    await docker.getSecret((foreign as { id: string }).id).remove();
    // delete: an unattached secret goes; an attached one is kept while its compose references go.
    await createVersioned(env, docker, 'secret', `${stack}_tmp`, Buffer.from('tmp'));
    const d1 = await deleteVersioned(env, docker, 'secret', `${stack}_tmp`);
    expect(d1.removed).toHaveLength(1);
    expect(ComposeFile.load(env.mainCompose).has(['secrets', `${stack}_tmp`])).toBe(false);
    const d2 = await deleteVersioned(env, docker, 'secret', `${stack}_pw`);
    expect(d2.removed).toEqual([]);
    expect(d2.kept).toEqual([{ dockerName: s2.dockerName, usedBy: [`${stack}_web`] }]);
    const compose = ComposeFile.load(env.mainCompose);
    expect(compose.has(['secrets', `${stack}_pw`])).toBe(false);
    expect(compose.get(['services', 'web', 'secrets'])).toBeUndefined();
    await expect(deleteVersioned(env, docker, 'secret', `${stack}_none`)).rejects.toThrow(/no secret named/);
  }, 300_000);

  it('a rollout of v2 under a request loop through Caddy has 0 failed requests', async () => {
    writeApp(join(env.dir, 'web'), 'v2\n');
    for (const i of await buildImages(env, docker, { tag: 'v2' })) built.add(i.image);
    const loop = requestLoop(get);
    let loads = 0;
    try {
      await rollout(env, docker, {
        timeoutMs: 240_000,
        onProgress: (line) => {
          if (line.startsWith('routing: ')) loads++;
        },
      });
      // keep the loop going while the old tasks are stopped
      await sleep(4000);
    } finally {
      await loop.stop();
    }
    const { results, resets } = loop;
    const failed = results.filter((r) => r.status !== 200);
    expect(results.length).toBeGreaterThan(20);
    expect(failed).toEqual([]);
    // Caddy's listener swap at a config load may reset a queued connection; never more than one per load.
    expect(loads).toBeGreaterThan(0);
    expect(resets.length).toBeLessThanOrEqual(loads);
    expect(results.some((r) => r.body === 'v1\n')).toBe(true);
    expect(results.at(-1)?.body).toBe('v2\n');
  }, 300_000);

  it('canary: new replicas receive traffic, --abort removes them, --promote rolls the rest', async () => {
    writeApp(join(env.dir, 'web'), 'v3\n');
    for (const i of await buildImages(env, docker, { tag: 'v3' })) built.add(i.image);
    const st = await startCanary(env, docker, 'web', { replicas: 1, timeoutMs: 120_000 });
    expect(st.running).toBe(1);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add((await get()).body);
    expect(seen).toEqual(new Set(['v2\n', 'v3\n']));
    expect(await abortCanary(env, docker, 'web')).toBe(true);
    for (let i = 0; i < 10; i++) expect((await get()).body).toBe('v2\n');
    await startCanary(env, docker, 'web', { replicas: 1, timeoutMs: 120_000 });
    await promoteCanary(env, docker, 'web', { timeoutMs: 240_000 });
    for (let i = 0; i < 10; i++) expect((await get()).body).toBe('v3\n');
    const names = (await docker.listServices()) as { Spec: { Name: string } }[];
    expect(names.map((s) => s.Spec.Name)).not.toContain(`${stack}_web_canary`);
  }, 400_000);

  it('the cron scheduler runs a `code cron` service on its schedule; the runs are visible', async () => {
    cronService(env, 'report', { schedule: '*/2 * * * * *', skipRunning: true });
    await rollout(env, docker, { timeoutMs: 240_000 });
    const events: string[] = [];
    const scheduler = new CronScheduler({
      docker,
      stack,
      refreshMs: 1000,
      onEvent: (e) => events.push(`${e.type} ${e.service}`),
    });
    await scheduler.start();
    try {
      expect(scheduler.scheduled()).toEqual(new Map([[`${stack}_report`, '*/2 * * * * *']]));
      const runs = await waitFor(
        'two completed runs',
        async () => {
          const r = (await cronRuns(docker, `${stack}_report`)).filter((x) => x.state === 'complete');
          return r.length >= 2 ? r : undefined;
        },
        60_000,
      );
      expect(runs.every((r) => r.exitCode === 0)).toBe(true);
      expect(events).toContain(`run ${stack}_report`);
    } finally {
      scheduler.stop();
    }
  }, 300_000);

  it('a rollout of a broken image rolls back by itself and the old version keeps serving', async () => {
    writeApp(join(env.dir, 'web'), 'broken\n', true);
    for (const i of await buildImages(env, docker, { tag: 'broken' })) built.add(i.image);
    await expect(rollout(env, docker, { timeoutMs: 240_000 })).rejects.toThrow(/rolled back/);
    const web = (await stackServices(docker, stack)).find((s) => s.Spec.Name === `${stack}_web`);
    expect(web?.Spec.TaskTemplate.ContainerSpec.Image).toContain(':v3');
    await new RoutingSync(env, docker).sync(true);
    for (let i = 0; i < 10; i++) expect(await get()).toMatchObject({ status: 200, body: 'v3\n' });
  }, 300_000);

  it('a service whose tasks keep failing on its first deploy fails the rollout instead of waiting', async () => {
    const f = ComposeFile.load(env.mainCompose);
    f.set(['services', 'crash'], {
      image: BASE_IMAGE,
      command: ['sh', '-c', 'exit 3'],
      deploy: { restart_policy: { condition: 'any', delay: '1s' } },
    });
    f.save();
    await expect(rollout(env, docker, { timeoutMs: 240_000 })).rejects.toThrow(
      new RegExp(`${stack}_crash failed \\(\\d+ tasks failed: task: non-zero exit \\(3\\)\\)`),
    );
  }, 300_000);
});
