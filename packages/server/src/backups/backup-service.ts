/**
 * Backups of the platform database and of add-on databases: `pg_dump -Fc` files in
 * MINIPAAS_HOME/backups named `<kind>-<name>-<UTC timestamp>[-N].dump` (docs/addons.md).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BACKUP_FILE_RE, type BackupView, MinipaasError } from '@minipaas/core';
import type { Logger } from 'pino';
import type { AddonService } from '../services/addon-service.ts';
import type { AppService } from '../services/app-service.ts';
import { PostgresAdmin, parsePgUrl } from '../services/postgres-admin.ts';
import { pgDump, pgRestore } from './pg-tools.ts';

export interface BackupServiceDeps {
  /** MINIPAAS_HOME/backups. */
  dir: string;
  /** URL of the platform database; undefined when it is not on a Postgres server. */
  platformUrl: string | undefined;
  apps: AppService;
  addons: AddonService;
  log: Logger;
}

/** `20261126T030000Z` for a date (UTC, to the second). */
export function backupStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

function stampDate(stamp: string): Date {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(stamp);
  if (!m) throw new Error(`bad backup timestamp ${stamp}`);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

export class BackupService {
  readonly #d: BackupServiceDeps;

  constructor(deps: BackupServiceDeps) {
    this.#d = deps;
  }

  get dir(): string {
    return this.#d.dir;
  }

  /** Every backup file, newest first. */
  async list(): Promise<BackupView[]> {
    let names: string[];
    try {
      names = await readdir(this.#d.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: BackupView[] = [];
    for (const file of names) {
      const m = BACKUP_FILE_RE.exec(file);
      if (!m) continue;
      const path = join(this.#d.dir, file);
      const st = await stat(path);
      out.push({
        file,
        kind: m[1] as BackupView['kind'],
        name: m[2] as string,
        path,
        bytes: st.size,
        createdAt: stampDate(m[3] as string).toISOString(),
      });
    }
    const seq = (f: string) => Number(BACKUP_FILE_RE.exec(f)?.[4] ?? 1);
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || seq(b.file) - seq(a.file));
  }

  /** One backup by its file name (a bare name from `list`, never a path). */
  async get(file: string): Promise<BackupView> {
    if (!BACKUP_FILE_RE.test(file))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        'a backup is named by its file name as listed by "minipaas backups" (e.g. addon-web.postgres-20261126T030000Z.dump), not a path',
      );
    const found = (await this.list()).find((b) => b.file === file);
    if (!found)
      throw new MinipaasError('MINIPAAS_ERR_BACKUP_NOT_FOUND', `no backup named ${file} in ${this.#d.dir}`);
    return found;
  }

  async #dump(url: string, kind: BackupView['kind'], name: string, now: Date): Promise<BackupView> {
    await mkdir(this.#d.dir, { recursive: true, mode: 0o700 });
    // Two backups of one database within the same second get `-2`, `-3`, ... after the timestamp.
    // The name is reserved by creating its `.partial` file exclusively, so concurrent backups never collide.
    const base = `${kind}-${name}-${backupStamp(now)}`;
    let file = '';
    for (let n = 1; !file; n++) {
      if (n > 9999) throw new MinipaasError('MINIPAAS_ERR_CONFLICT', `too many backups named ${base}`);
      const candidate = n === 1 ? `${base}.dump` : `${base}-${n}.dump`;
      if (existsSync(join(this.#d.dir, candidate))) continue;
      try {
        await writeFile(join(this.#d.dir, `${candidate}.partial`), '', { flag: 'wx', mode: 0o600 });
        file = candidate;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    const path = join(this.#d.dir, file);
    const partial = `${path}.partial`;
    try {
      await pgDump(url, partial, this.#d.dir);
      await rename(partial, path);
    } finally {
      await rm(partial, { force: true });
    }
    this.#d.log.info({ file }, 'backup written');
    return this.get(file);
  }

  /** Dumps the platform database. */
  async backupPlatform(now = new Date()): Promise<BackupView> {
    if (!this.#d.platformUrl)
      throw new MinipaasError(
        'MINIPAAS_ERR_NOT_AVAILABLE',
        'the platform database is not on a PostgreSQL server, so pg_dump cannot back it up',
      );
    const db = decodeURIComponent(parsePgUrl(this.#d.platformUrl).pathname.slice(1)) || 'postgres';
    const name = db
      .toLowerCase()
      .replace(/[^a-z0-9_-]/g, '_')
      .slice(0, 60);
    return this.#dump(this.#d.platformUrl, 'platform', name, now);
  }

  /** Dumps an add-on's database (as the add-on's own role). */
  async backupAddon(appRef: string, addonName: string, now = new Date()): Promise<BackupView> {
    const app = await this.#d.apps.get(appRef);
    const addon = await this.#d.addons.get(app, addonName);
    return this.#dump(this.#d.addons.url(addon), 'addon', `${app.name}.${addon.name}`, now);
  }

  /**
   * Restores a backup into an add-on's database: its sessions are ended, then the dump replaces the
   * objects it holds, in one transaction, owned by the add-on's role.
   */
  async restoreAddon(
    appRef: string,
    addonName: string,
    file: string,
    opts: { fromOther?: boolean } = {},
  ): Promise<BackupView> {
    const app = await this.#d.apps.get(appRef);
    const addon = await this.#d.addons.get(app, addonName);
    const backup = await this.get(file);
    if (backup.kind !== 'addon')
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `${file} is a backup of the platform database; restore it with "minipaas restore ${file}" on the platform host`,
      );
    // Another app's data only on purpose (e.g. production into staging), never by a mistyped file name.
    const own = `${app.name}.${addon.name}`;
    if (backup.name !== own && !opts.fromOther)
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `${file} is a backup of ${backup.name}, not of ${own}; to copy another add-on's data into this one, ask for it explicitly ("fromOther": true, CLI --from-other)`,
      );
    const admin = new PostgresAdmin(this.#d.addons.adminUrlFor(addon));
    await admin.terminate(addon.database_name);
    await pgRestore(this.#d.addons.url(addon), backup.path, this.#d.dir, true);
    this.#d.log.info({ app: app.name, addon: addon.name, file }, 'add-on database restored');
    return backup;
  }

  /** Deletes the oldest platform backups beyond `keep`; returns the deleted file names. */
  async prunePlatform(keep: number): Promise<string[]> {
    const old = (await this.list()).filter((b) => b.kind === 'platform').slice(keep);
    for (const b of old) await rm(b.path, { force: true });
    if (old.length) this.#d.log.info({ deleted: old.map((b) => b.file) }, 'old backups deleted');
    return old.map((b) => b.file);
  }
}
