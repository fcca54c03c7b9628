/**
 * The runtime drivers of this control plane, keyed by the app's `runtime` (`process` today; docker and
 * swarm plug in by adding a driver, without touching the pipeline or the routes).
 */
import { MinipaasError, type RuntimeAppState, type RuntimeDriver, type RuntimeHealth } from '@minipaas/core';

export type RuntimeHealthReport = RuntimeHealth | { ok: false; error: string };

export class RuntimeRegistry {
  readonly #drivers = new Map<string, RuntimeDriver>();

  constructor(drivers: readonly RuntimeDriver[]) {
    if (drivers.length === 0) throw new Error('a control plane needs at least one runtime driver');
    for (const d of drivers) {
      if (this.#drivers.has(d.name)) throw new Error(`two runtime drivers are named "${d.name}"`);
      this.#drivers.set(d.name, d);
    }
  }

  names(): string[] {
    return [...this.#drivers.keys()];
  }

  /** The driver of `runtime`; a clear 400 when this platform does not run it. */
  for(runtime: string): RuntimeDriver {
    const d = this.#drivers.get(runtime);
    if (!d) {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `runtime "${runtime}" is not available on this platform (available: ${this.names().join(', ')})`,
      );
    }
    return d;
  }

  forApp(app: { runtime: string }): RuntimeDriver {
    return this.for(app.runtime);
  }

  /** Observed state of every app of every runtime; a runtime that does not answer rejects. */
  async list(): Promise<RuntimeAppState[]> {
    const all = await Promise.all([...this.#drivers.values()].map((d) => d.list()));
    return all.flat();
  }

  /** Health of each runtime by name; a runtime that does not answer is reported, not thrown. */
  async health(): Promise<Record<string, RuntimeHealthReport>> {
    const out: Record<string, RuntimeHealthReport> = {};
    await Promise.all(
      [...this.#drivers.values()].map(async (d) => {
        out[d.name] = await d.health().catch((err: Error) => ({ ok: false as const, error: err.message }));
      }),
    );
    return out;
  }
}
