import type { AgentAppState } from '@minipaas/core';
import { AgentClient, ProcessDriver } from '@minipaas/runtime-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { makeHome, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

describe('watch stream of an app state', () => {
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

  it('sends the state at once and one line per change until the client aborts', async () => {
    await client.putApp(webSpec(home, 'watched', 'v1'));
    const ac = new AbortController();
    const seen: AgentAppState[] = [];
    const reader = (async () => {
      for await (const s of client.watchApp('watched', { signal: ac.signal })) {
        seen.push(s);
        if (s.rollout.release === 'v2' && s.rollout.status === 'ready') ac.abort();
      }
    })();
    await waitFor(() => seen.length > 0, 10_000, 'first state');
    expect(seen[0]?.name).toBe('watched');
    await waitFor(() => seen.some((s) => s.rollout.status === 'ready'), 10_000, 'v1 ready seen');
    await client.putApp(webSpec(home, 'watched', 'v2'));
    await reader; // ends once aborted
    const v2 = seen.filter((s) => s.rollout.release === 'v2').map((s) => s.rollout.status);
    expect(v2[0]).toBe('rolling');
    expect(v2.at(-1)).toBe('ready');
    // one line per change: no two consecutive lines are the same state
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toEqual(seen[i - 1]);
    // the instance statuses on the way are visible (starting → running of v2's instance)
    const v2Instances = seen.flatMap((s) =>
      s.instances.filter((i) => i.release === 'v2').map((i) => i.status),
    );
    expect(v2Instances).toContain('starting');
    expect(v2Instances).toContain('running');
    // the agent dropped the watcher with the connection
    await waitFor(() => agent.supervisor.watcherCount('watched') === 0, 5_000, 'watcher gone');
  });

  it('ends when the app is removed; an unknown app is APP_NOT_FOUND (the driver yields nothing)', async () => {
    const seen: AgentAppState[] = [];
    const ac = new AbortController();
    const reader = (async () => {
      for await (const s of client.watchApp('watched', { signal: ac.signal })) seen.push(s);
    })();
    await waitFor(() => seen.length > 0, 10_000, 'first state');
    await client.deleteApp('watched');
    await reader; // ended by the agent, not by the abort
    expect(ac.signal.aborted).toBe(false);

    const it = client.watchApp('nope')[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toMatchObject({ code: 'MINIPAAS_ERR_APP_NOT_FOUND' });
    const driver = new ProcessDriver(client);
    const states: unknown[] = [];
    for await (const s of driver.watch('nope', { signal: new AbortController().signal })) states.push(s);
    expect(states).toEqual([]);
  });

  it('ProcessDriver.watch follows a rollout to its verdict', async () => {
    const driver = new ProcessDriver(client);
    const spec = webSpec(home, 'driven', 'v1');
    await client.putApp(spec);
    const ac = new AbortController();
    let verdict: AgentAppState | null = null;
    for await (const s of driver.watch('driven', { signal: ac.signal })) {
      if (s.rollout.status === 'ready' || s.rollout.status === 'failed') {
        verdict = s;
        ac.abort();
      }
    }
    expect(verdict?.rollout).toMatchObject({ release: 'v1', status: 'ready' });
    expect(verdict?.instances[0]?.status).toBe('running');
    await client.deleteApp('driven');
  });
});
