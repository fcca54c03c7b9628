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
