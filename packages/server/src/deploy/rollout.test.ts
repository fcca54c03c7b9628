/**
 * The rollout stage's two ways to wait for the runtime's verdict: a driver's `watch` stream, or polling
 * `get`. The driver here is a small in-memory runtime that changes state when told to (the process driver
 * against a real agent is covered by the deploy tests).
 */
import type { RolloutStatus, RuntimeAppState, RuntimeDriver, RuntimeSpec } from '@minipaas/core';
import { describe, expect, it } from 'vitest';
import { rollout } from './rollout.ts';

class MemoryRuntime {
  state: RuntimeAppState | null = null;
  gets = 0;
  readonly #listeners = new Set<() => void>();

  set(release: string, status: RolloutStatus, error?: string): void {
    this.state = {
      name: 'app',
      release: status === 'ready' ? release : null,
      rollout: { release, status, updatedAt: new Date().toISOString(), ...(error ? { error } : {}) },
      instances: [],
    };
    for (const l of this.#listeners) l();
  }

  driver(withWatch: boolean): RuntimeDriver {
    const fail = () => Promise.reject(new Error('not used'));
    const d: RuntimeDriver = {
      name: 'memory',
      health: fail,
      apply: async (spec) => {
        this.set(spec.release, 'rolling');
        return this.state as RuntimeAppState;
      },
      get: async () => {
        this.gets++;
        return this.state;
      },
      list: fail,
      remove: fail,
      restart: fail,
      logs: fail,
      followLogs: () => ({ [Symbol.asyncIterator]: () => ({ next: fail }) }),
    };
    if (withWatch) {
      const self = this;
      d.watch = (_app, { signal }) => ({
        async *[Symbol.asyncIterator]() {
          let wake: () => void = () => undefined;
          const onChange = () => wake();
          self.#listeners.add(onChange);
          try {
            while (!signal.aborted) {
              if (self.state) yield self.state;
              await new Promise<void>((r) => {
                wake = r;
                signal.addEventListener('abort', () => r(), { once: true });
              });
            }
          } finally {
            self.#listeners.delete(onChange);
          }
        },
      });
    }
    return d;
  }
}

const spec: RuntimeSpec = {
  name: 'app',
  release: 'v2',
  artifact: { kind: 'directory', path: '/nonexistent' },
  env: {},
  processes: {},
};

describe('rollout', () => {
  it("waits on the driver's watch stream, never polling", async () => {
    const rt = new MemoryRuntime();
    const result = rollout(rt.driver(true), spec, { timeoutMs: 60_000 });
    await new Promise((r) => setImmediate(r));
    rt.set('v1', 'ready'); // another release's verdict is not this one's
    rt.set('v2', 'ready');
    const state = await result;
    expect(state.rollout).toMatchObject({ release: 'v2', status: 'ready' });
    expect(rt.gets).toBe(0);
  });

  it('returns a failed verdict from the stream', async () => {
    const rt = new MemoryRuntime();
    const result = rollout(rt.driver(true), spec, { timeoutMs: 60_000 });
    await new Promise((r) => setImmediate(r));
    rt.set('v2', 'failed', 'health check failed');
    expect((await result).rollout).toMatchObject({ status: 'failed', error: 'health check failed' });
  });

  it('polls get for drivers without watch', async () => {
    const rt = new MemoryRuntime();
    const result = rollout(rt.driver(false), spec, { timeoutMs: 60_000 });
    await new Promise((r) => setImmediate(r));
    rt.set('v2', 'ready');
    expect((await result).rollout.status).toBe('ready');
    expect(rt.gets).toBeGreaterThan(0);
  });
});
