/**
 * Idle cost: a control plane re-pushes every app's spec periodically. An identical push must change
 * nothing: no state file write, no rollout, no new process. A changed spec is still persisted.
 */
import { readFileSync, statSync } from 'node:fs';
import { type AppSpec, appSpecDigest, homePaths, SecretBox } from '@minipaas/core';
import { AgentClient } from '@minipaas/runtime-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../src/agent.ts';
import { makeHome, removeHome, startTestAgent, waitFor, webSpec } from './helpers.ts';

const APPS = 6;

interface Persisted {
  apps: Array<{ spec: AppSpec; serving: AppSpec | null }>;
  processes: Array<{ pid: number; start: string | null }>;
}

/** The same spec as a new object with its keys in another order (what a fresh push looks like). */
function reordered(spec: AppSpec): AppSpec {
  const entries = Object.entries(JSON.parse(JSON.stringify(spec)) as Record<string, unknown>).reverse();
  return Object.fromEntries(entries) as unknown as AppSpec;
}

describe('agent: idle pushes', () => {
  let home: string;
  let agent: AgentHandle;
  let client: AgentClient;
  let stateFile: string;
  const specs: AppSpec[] = [];

  /** The state file with each spec's env opened (the agent seals env vars with the master key). */
  const readState = (): Persisted => {
    const raw = JSON.parse(readFileSync(stateFile, 'utf8')) as Persisted;
    const box = new SecretBox(home);
    const open = (s: AppSpec & { sealedEnv?: string }): AppSpec => {
      if (!s.sealedEnv) return s;
      const { sealedEnv, ...rest } = s;
      const { env, maskValues } = JSON.parse(box.open(sealedEnv, `agent-state:${s.name}`));
      return { ...rest, env, ...(maskValues ? { maskValues } : {}) };
    };
    return {
      ...raw,
      apps: raw.apps.map((a) => ({ ...a, spec: open(a.spec), serving: a.serving && open(a.serving) })),
    };
  };

  beforeAll(async () => {
    home = makeHome();
    agent = await startTestAgent(home);
    client = new AgentClient({ home });
    stateFile = homePaths(home).agentState;
    for (let n = 0; n < APPS; n++) specs.push(webSpec(home, `idle-${n}`, 'v1'));
    for (const s of specs) await client.putApp(s);
    await waitFor(
      async () => {
        const all = await client.listApps();
        return all.length === APPS && all.every((a) => a.rollout.status === 'ready');
      },
      60_000,
      'all apps ready',
    );
    // The persisted state has caught up once every app serves and every pid is recorded.
    await waitFor(() => {
      const s = readState();
      return s.apps.every((a) => a.serving !== null) && s.processes.length === APPS;
    });
  }, 90_000);

  afterAll(async () => {
    await client?.close();
    await agent?.close();
    removeHome(home);
  });

  it('identical pushes rewrite nothing, roll nothing and report the spec digest', async () => {
    await client.listApps(); // one more round trip: a coalesced write scheduled before now has run
    const before = statSync(stateFile);
    const text = readFileSync(stateFile, 'utf8');
    const states = new Map((await client.listApps()).map((a) => [a.name, a]));
    for (let round = 0; round < 5; round++) {
      for (const s of specs) {
        const got = await client.putApp(reordered(s));
        expect(got.specDigest).toBe(appSpecDigest(s));
        expect(got.rollout).toEqual(states.get(s.name)?.rollout);
      }
    }
    await client.listApps();
    const after = statSync(stateFile);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(readFileSync(stateFile, 'utf8')).toBe(text);
    for (const a of await client.listApps()) {
      const was = states.get(a.name);
      expect(a.rollout).toEqual(was?.rollout);
      expect(a.instances.map((i) => [i.id, i.pid, i.status])).toEqual(
        was?.instances.map((i) => [i.id, i.pid, i.status]),
      );
    }
  });

  it('a changed spec is persisted (and only then is the file rewritten)', async () => {
    const before = statSync(stateFile);
    const first = specs[0] as AppSpec;
    const changed: AppSpec = { ...first, env: { ...first.env, GREETING: 'changed' } };
    const put = await client.putApp(changed);
    expect(put.rollout.status).toBe('rolling');
    expect(put.specDigest).toBe(appSpecDigest(changed));
    expect(put.specDigest).not.toBe(appSpecDigest(first));
    await waitFor(async () => (await client.getApp(first.name))?.rollout.status === 'ready', 30_000);
    const saved = await waitFor(() => {
      const s = readState().apps.find((a) => a.spec.name === first.name);
      return s?.spec.env.GREETING === 'changed' && s.serving?.env.GREETING === 'changed' ? s : null;
    });
    expect(saved.spec).toEqual(changed);
    // (the file's content proves the rewrite; its inode number may come back after several renames)
    expect(statSync(stateFile).mtimeMs).toBeGreaterThan(before.mtimeMs);

    const scaled: AppSpec = {
      ...changed,
      processes: { web: { command: changed.processes.web?.command as string, instances: 2 } },
    };
    await client.putApp(scaled);
    await waitFor(
      () => readState().apps.find((a) => a.spec.name === first.name)?.spec.processes.web?.instances === 2,
    );
  });
});
