/**
 * Closes the gap between desired state (the DB) and the runtime. On start it pushes every app's
 * spec; the agent treats identical specs as no-ops, so running apps are adopted, never duplicated.
 * It retries until the runtime answers and then keeps re-checking periodically.
 *
 * Idle cost: a periodic pass is one `list()` from the runtime and one query for the apps. An app is
 * pushed again only when its DB row changed since the last push, or the runtime does not hold the spec
 * that was pushed (its `specDigest` differs or is missing: an agent restarted without its state, a push
 * that failed). Every `fullResyncMs` a pass pushes every app regardless (cheap: the agent answers an
 * identical spec without writing or reading anything), which also covers what a row does not show.
 */
import type { Logger } from 'pino';
import type { RuntimeRegistry } from './runtime/runtime-registry.ts';
import type { AppService } from './services/app-service.ts';

export interface ReconcilerOptions {
  apps: AppService;
  runtimes: RuntimeRegistry;
  log: Logger;
  /** Interval between periodic passes (default 5 s). */
  intervalMs?: number;
  /** Interval between passes that push every app even when nothing looks changed (default 5 min). */
  fullResyncMs?: number;
}

/** What was last pushed for an app: the DB row it was built from and the runtime's digest of the spec. */
interface Pushed {
  row: string;
  digest: string;
}

export class Reconciler {
  readonly #o: ReconcilerOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  readonly #pushed = new Map<string, Pushed>();
  #lastFull = Number.NEGATIVE_INFINITY;

  constructor(opts: ReconcilerOptions) {
    this.#o = opts;
  }

  /**
   * One pass: push the desired state of every deployed app that may differ from what the runtime holds
   * (every app when `full`, or when the last full pass is older than `fullResyncMs`). Returns how many
   * apps were pushed.
   */
  async pass(full?: boolean): Promise<number> {
    const { apps, runtimes, log } = this.#o;
    const now = Date.now();
    const all = full ?? now - this.#lastFull >= (this.#o.fullResyncMs ?? 300_000);
    const observed = new Map((await runtimes.list()).map((s) => [s.name, s]));
    const rows = await apps.list();
    const seen = new Set<string>();
    let synced = 0;
    for (const app of rows) {
      seen.add(app.id);
      if (!app.current_release || app.status === 'stopped' || app.status === 'deploying') continue;
      const have = observed.get(app.name);
      if (have?.rollout.status === 'rolling') continue;
      const row = JSON.stringify(app);
      const last = this.#pushed.get(app.id);
      if (!all && last && last.row === row && have?.specDigest === last.digest) continue;
      try {
        const state = await apps.apply(app);
        if (state?.specDigest) this.#pushed.set(app.id, { row, digest: state.specDigest });
        else this.#pushed.delete(app.id);
        synced++;
      } catch (err) {
        this.#pushed.delete(app.id);
        log.warn({ err, app: app.name }, 'reconcile failed for app');
      }
    }
    for (const id of this.#pushed.keys()) if (!seen.has(id)) this.#pushed.delete(id);
    if (all) this.#lastFull = now;
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
