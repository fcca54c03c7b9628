/**
 * Closes the gap between desired state (the DB) and the runtime. On start it pushes every app's
 * spec; the agent treats identical specs as no-ops, so running apps are adopted, never duplicated.
 * It retries until the runtime answers and then keeps re-checking periodically.
 */
import type { Logger } from 'pino';
import type { RuntimeDriver } from './runtime/runtime-driver.ts';
import type { AppService } from './services/app-service.ts';

export interface ReconcilerOptions {
  apps: AppService;
  driver: RuntimeDriver;
  log: Logger;
  /** Interval between periodic passes. */
  intervalMs?: number;
}

export class Reconciler {
  readonly #o: ReconcilerOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;

  constructor(opts: ReconcilerOptions) {
    this.#o = opts;
  }

  /** One pass: push every deployed app's desired state. Returns how many apps were synced. */
  async pass(): Promise<number> {
    const { apps, driver, log } = this.#o;
    const observed = new Map((await driver.list()).map((s) => [s.name, s]));
    let synced = 0;
    for (const app of await apps.list()) {
      if (!app.current_release || app.status === 'stopped' || app.status === 'deploying') continue;
      const have = observed.get(app.name);
      if (have?.rollout.status === 'rolling') continue;
      try {
        await apps.apply(app);
        synced++;
      } catch (err) {
        log.warn({ err, app: app.name }, 'reconcile failed for app');
      }
    }
    return synced;
  }

  start(): void {
    const tick = async () => {
      if (this.#running) return;
      this.#running = this.pass()
        .then((n) => this.#o.log.debug({ apps: n }, 'reconciled'))
        .catch((err: Error) => this.#o.log.warn({ err: err.message }, 'runtime not reachable; will retry'))
        .finally(() => {
          this.#running = null;
        });
    };
    void tick();
    this.#timer = setInterval(tick, this.#o.intervalMs ?? 5000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }
}
