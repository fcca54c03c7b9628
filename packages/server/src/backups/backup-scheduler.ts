/**
 * Scheduled platform backups: once a day after `backups.schedule` (local `HH:MM`, or `off`), a
 * dump of the platform database, then the oldest platform backups beyond `backups.keep` are deleted.
 * The backup files themselves are the schedule's memory: after a restart nothing is taken twice.
 */
import type { Logger } from 'pino';
import type { BackupService } from './backup-service.ts';

export interface BackupSchedulerOptions {
  backups: BackupService;
  /** `off` or a local daily time `HH:MM` (config `backups.schedule`). */
  schedule: string;
  /** Platform backups kept (config `backups.keep`). */
  keep: number;
  log: Logger;
  /** How often the schedule is checked (default one minute). */
  checkEveryMs?: number;
  /** The clock (tests pass their own). */
  now?: () => Date;
}

/** Today's scheduled time for `now` (local time), or null when the schedule is `off`. */
export function scheduledTime(schedule: string, now: Date): Date | null {
  const m = /^(\d\d):(\d\d)$/.exec(schedule);
  if (!m) return null;
  const at = new Date(now);
  at.setHours(Number(m[1]), Number(m[2]), 0, 0);
  return at;
}

export class BackupScheduler {
  readonly #o: BackupSchedulerOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> | null = null;
  /** After a failure the next try waits this long (no error every minute when pg_dump is missing). */
  #retryAfter = 0;

  constructor(opts: BackupSchedulerOptions) {
    this.#o = opts;
  }

  /**
   * One check: when today's time has passed and no platform backup was taken since, takes one and
   * prunes. Returns the new backup's file name, or null when nothing was due.
   */
  async tick(): Promise<string | null> {
    const now = (this.#o.now ?? (() => new Date()))();
    const at = scheduledTime(this.#o.schedule, now);
    if (!at || now < at) return null;
    const latest = (await this.#o.backups.list()).find((b) => b.kind === 'platform');
    if (latest && new Date(latest.createdAt) >= at) return null;
    const b = await this.#o.backups.backupPlatform(now);
    await this.#o.backups.prunePlatform(this.#o.keep);
    return b.file;
  }

  start(): void {
    if (scheduledTime(this.#o.schedule, new Date()) === null) return;
    const check = () => {
      if (this.#running || Date.now() < this.#retryAfter) return;
      this.#running = this.tick()
        .then((file) => {
          if (file) this.#o.log.info({ file }, 'scheduled backup taken');
        })
        .catch((err: Error) => {
          this.#retryAfter = Date.now() + 15 * 60_000;
          this.#o.log.error({ err: err.message }, 'scheduled backup failed; retrying in 15 minutes');
        })
        .finally(() => {
          this.#running = null;
        });
    };
    check();
    this.#timer = setInterval(check, this.#o.checkEveryMs ?? 60_000);
    this.#timer.unref();
  }

  /** Stops the checks and waits for a backup in progress. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }
}
