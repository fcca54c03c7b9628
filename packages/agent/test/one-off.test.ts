import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '@minipaas/runtime-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { makeHome, NODE, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

describe('one-off process types', () => {
  let home: string;
  let agent: AgentHandle;
  let client: AgentClient;

  beforeAll(async () => {
    home = makeHome();
    agent = await startTestAgent(home);
    client = new AgentClient({ home });
  });

  afterAll(async () => {
    await client?.close();
    await agent?.close();
    removeHome(home);
  });

  const settled = (name: string) =>
    waitFor(async () => {
      const s = await client.getApp(name);
      return s && s.rollout.status !== 'rolling' ? s : null;
    });

  it('a non-web type that exits 0 is finished: stopped with code 0, not restarted, rollout ready', async () => {
    const spec = webSpec(home, 'oneoff', 'v1', {
      processes: {
        web: { command: `${NODE} web.js`, instances: 1 },
        migrate: { command: `${NODE} -e "console.log('migrated')"`, instances: 1 },
      },
    });
    await client.putApp(spec);
    const s = await settled('oneoff');
    expect(s.rollout.status).toBe('ready');
    const job = s.instances.find((i) => i.processType === 'migrate');
    expect(job).toMatchObject({ status: 'stopped', lastExitCode: 0, restarts: 0, pid: null });
    const lines = (await client.logs('oneoff', { process: 'migrate', tail: 20 })).map((l) => l.line);
    expect(lines).toContain('migrated');
    expect(lines.some((l) => /finished \(exited with code 0\); not restarted/.test(l))).toBe(true);

    // Scaling the web type leaves the finished one-off alone (it is not run again).
    await client.putApp({
      ...spec,
      processes: { ...spec.processes, web: { command: `${NODE} web.js`, instances: 2 } },
    });
    const scaled = await waitFor(async () => {
      const st = await client.getApp('oneoff');
      return st?.instances.filter((i) => i.processType === 'web' && i.status === 'running').length === 2
        ? st
        : null;
    });
    const jobs = scaled.instances.filter((i) => i.processType === 'migrate');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ id: job?.id, status: 'stopped', lastExitCode: 0, restarts: 0 });
    await client.deleteApp('oneoff');
  });

  it('a restarted agent does not run a finished one-off again (its state file remembers it)', async () => {
    // The one-off runs as the app's own user: it writes into a directory anyone may write to.
    const shared = mkdtempSync(join(tmpdir(), 'mp-oneoff-'));
    chmodSync(shared, 0o777);
    const marker = join(shared, 'runs.txt');
    const spec = webSpec(home, 'once', 'v1', {
      processes: {
        web: { command: `${NODE} web.js`, instances: 1 },
        setup: {
          command: `${NODE} -e "require('fs').appendFileSync('${marker}', 'ran\\n')"`,
          instances: 1,
        },
      },
    });
    await client.putApp(spec);
    const first = await settled('once');
    expect(first.rollout.status, JSON.stringify(first.rollout)).toBe('ready');
    await waitFor(async () =>
      (await client.getApp('once'))?.instances.some(
        (i) => i.processType === 'setup' && i.status === 'stopped',
      ),
    );
    expect(readFileSync(marker, 'utf8')).toBe('ran\n');

    // The agent stops (its apps with it) and a new one restores the saved specs.
    await client.close();
    await agent.close();
    agent = await startTestAgent(home);
    client = new AgentClient({ home });
    const back = await waitFor(async () => {
      const s = await client.getApp('once');
      return s?.rollout.status === 'ready' && s.instances.some((i) => i.status === 'running') ? s : null;
    });
    const setup = back.instances.filter((i) => i.processType === 'setup');
    expect(setup).toHaveLength(1);
    expect(setup[0]).toMatchObject({ status: 'stopped', lastExitCode: 0, pid: null });
    expect(readFileSync(marker, 'utf8')).toBe('ran\n');
    const lines = (await client.logs('once', { process: 'setup', tail: 20 })).map((l) => l.line);
    expect(lines.some((l) => /finished before the agent restarted; not run again/.test(l))).toBe(true);

    // A new release runs it again.
    await client.putApp({ ...spec, release: 'v2' });
    await waitFor(async () => readFileSync(marker, 'utf8') === 'ran\nran\n');
    await client.deleteApp('once');
    rmSync(shared, { recursive: true, force: true });
  });

  it('a non-web type that exits non-zero still crash-loops and fails the rollout', async () => {
    await client.putApp(
      webSpec(home, 'badjob', 'v1', {
        processes: {
          web: { command: `${NODE} web.js`, instances: 1 },
          job: { command: `${NODE} -e "process.exit(4)"`, instances: 1 },
        },
      }),
    );
    const s = await settled('badjob');
    expect(s.rollout.status).toBe('failed');
    expect(s.rollout.error).toMatch(/job exited with code 4 .*crash loop/);
    await client.deleteApp('badjob');
  });

  it('web exiting 0 is a crash', async () => {
    await client.putApp(
      webSpec(home, 'webzero', 'v1', {
        processes: { web: { command: `${NODE} -e "process.exit(0)"`, instances: 1 } },
      }),
    );
    const s = await settled('webzero');
    expect(s.rollout.status).toBe('failed');
    expect(s.rollout.error).toMatch(/web exited with code 0 .*crash loop/);
    await client.deleteApp('webzero');
  });
});
