/**
 * Add-ons: managed Postgres databases for apps (docs/addons.md). Each add-on is a database and a
 * LOGIN role of its own on the platform's Postgres server, or (`dedicated`) on a PostgreSQL server of
 * its own (see dedicated-postgres.ts); its connection URL goes into the app's env (`DATABASE_URL` for
 * the first, `<NAME>_URL` for others) and the app is rolled.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type AddonView, MinipaasError, SecretBox } from '@minipaas/core';
import { migrationSql } from '@minipaas/sql';
import type { Kysely, Selectable } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { z } from 'zod';
import { addonPasswordContext } from '../secrets/app-secrets.ts';
import type { AddonsTable, Database } from '../store/schema.ts';
import type { AppRow, AppService } from './app-service.ts';
import type { DedicatedPostgres, DedicatedServerRef } from './dedicated-postgres.ts';
import {
  type AppDatabase,
  connectionUrl,
  maskUrl,
  PostgresAdmin,
  type ServerAddress,
  serverAddress,
} from './postgres-admin.ts';

export type AddonRow = Selectable<AddonsTable>;

/** Add-on names: lowercase letters, digits and dashes, starting with a letter, at most 30. */
export const ADDON_NAME_RE = /^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$/;

/** The only add-on type so far. */
export const ADDON_TYPES = ['postgres'] as const;

export const createAddonSchema = z
  .object({
    type: z.string().max(40),
    name: z.string().max(100).optional(),
    dedicated: z.boolean().optional(),
  })
  .strict();
export type CreateAddonInput = z.infer<typeof createAddonSchema>;

export interface AddonServiceDeps {
  db: Kysely<Database>;
  apps: AppService;
  log: Logger;
  /**
   * Superuser (or CREATEDB + CREATEROLE) URL of the Postgres server that hosts app databases;
   * undefined when the platform has no Postgres server (add-ons are then unavailable).
   */
  adminUrl: string | undefined;
  /** Servers of dedicated add-ons; undefined when they are not available. */
  dedicated?: DedicatedPostgres | undefined;
}

/** Checks an add-on name; throws a 400 that says what is allowed. */
export function checkAddonName(name: string): void {
  if (!ADDON_NAME_RE.test(name) || name in Object.prototype)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `invalid add-on name "${name.slice(0, 40).replace(/[^\x20-\x7e]/g, '?')}": use 1-30 lowercase letters, digits and dashes, starting with a letter (not a reserved word)`,
    );
}

/** `mp_<app>_<name>_<random>` in Postgres' identifier alphabet, at most 63 bytes. */
export function databaseNameFor(app: string, name: string, suffix = randomBytes(4).toString('hex')): string {
  const clean = (s: string) => s.replace(/[^a-z0-9]/g, '_');
  const base = `mp_${clean(app)}_${clean(name)}`.slice(0, 63 - suffix.length - 1);
  return `${base}_${suffix}`;
}

/** The env var for an add-on: `DATABASE_URL` when free, else `<NAME>_URL`. */
export function envVarFor(name: string, taken: ReadonlySet<string>): string {
  if (!taken.has('DATABASE_URL')) return 'DATABASE_URL';
  return `${name.toUpperCase().replace(/-/g, '_')}_URL`;
}

export class AddonService {
  readonly #d: AddonServiceDeps;

  constructor(deps: AddonServiceDeps) {
    this.#d = deps;
  }

  #admin(): { admin: PostgresAdmin; addr: ServerAddress } {
    const url = this.#d.adminUrl;
    if (!url)
      throw new MinipaasError(
        'MINIPAAS_ERR_NOT_AVAILABLE',
        'Postgres add-ons need the platform to run on a PostgreSQL server (the embedded server or DATABASE_URL)',
      );
    return { admin: new PostgresAdmin(url), addr: serverAddress(url) };
  }

  #dedicated(): DedicatedPostgres {
    if (!this.#d.dedicated)
      throw new MinipaasError(
        'MINIPAAS_ERR_NOT_AVAILABLE',
        'dedicated Postgres servers are not available on this platform: leave out --dedicated to get a database on the platform server',
      );
    return this.#d.dedicated;
  }

  /** A dedicated add-on's server (its directory and port); undefined for a shared one. */
  #ref(row: AddonRow): DedicatedServerRef | undefined {
    if (!row.dedicated) return undefined;
    if (row.port === null) throw new Error(`dedicated add-on ${row.name} has no port recorded`);
    return { database: row.database_name, port: row.port };
  }

  /** Admin access to the server that holds the add-on's database. */
  #adminFor(row: AddonRow): { admin: PostgresAdmin; addr: ServerAddress } {
    const ref = this.#ref(row);
    if (!ref) return this.#admin();
    return {
      admin: new PostgresAdmin(this.#dedicated().adminUrl(ref)),
      addr: { host: '127.0.0.1', port: ref.port, socket: false },
    };
  }

  /** The admin URL of the platform server that hosts shared add-on databases (throws when there is none). */
  adminUrl(): string {
    return this.#admin().admin.adminUrl;
  }

  /** The admin URL of the server that holds this add-on's database (its own when dedicated). */
  adminUrlFor(row: AddonRow): string {
    return this.#adminFor(row).admin.adminUrl;
  }

  /** The dedicated add-ons of every app, for the watcher that keeps their servers running. */
  async dedicatedServers(): Promise<DedicatedServerRef[]> {
    const rows = await this.#d.db
      .selectFrom('addons')
      .select(['database_name', 'port'])
      .where('dedicated', '=', true)
      .execute();
    return rows.flatMap((r) => (r.port === null ? [] : [{ database: r.database_name, port: r.port }]));
  }

  /** The connection URL of an add-on (with its password, which is stored sealed: docs/security.md). */
  url(row: AddonRow): string {
    const password = SecretBox.isSealed(row.password)
      ? this.#d.apps.secretBox.open(row.password, addonPasswordContext(row.id))
      : row.password; // an add-on created before passwords were sealed
    return connectionUrl(this.#addr(row), row.role_name, password, row.database_name);
  }

  #addr(row: AddonRow): ServerAddress {
    const ref = this.#ref(row);
    return ref ? { host: '127.0.0.1', port: ref.port, socket: false } : this.#admin().addr;
  }

  view(app: AppRow, row: AddonRow, reveal = false): AddonView {
    const addr = this.#addr(row);
    const url = this.url(row);
    return {
      id: row.id,
      name: row.name,
      type: row.type,
      app: app.name,
      appId: app.id,
      dedicated: row.dedicated,
      envVar: row.env_var,
      database: row.database_name,
      role: row.role_name,
      host: addr.host,
      port: addr.port,
      url: reveal ? url : maskUrl(url),
      passwordRevealed: reveal,
      createdAt: new Date(row.created_at).toISOString(),
    };
  }

  async list(app: AppRow): Promise<AddonRow[]> {
    return this.#d.db
      .selectFrom('addons')
      .selectAll()
      .where('app_id', '=', app.id)
      .orderBy('created_at')
      .execute();
  }

  async get(app: AppRow, name: string): Promise<AddonRow> {
    checkAddonName(name);
    const row = await this.#d.db
      .selectFrom('addons')
      .selectAll()
      .where('app_id', '=', app.id)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row)
      throw new MinipaasError(
        'MINIPAAS_ERR_ADDON_NOT_FOUND',
        `app "${app.name}" has no add-on named "${name}"`,
      );
    return row;
  }

  /**
   * Creates a Postgres database and role for the app, records the add-on, sets its env var and
   * rolls the app. Input is checked before anything changes; when a later step fails, the database,
   * role and row are removed again.
   */
  async create(appRef: string, input: CreateAddonInput): Promise<{ app: AppRow; addon: AddonRow }> {
    const app = await this.#d.apps.get(appRef);
    if (!(ADDON_TYPES as readonly string[]).includes(input.type))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `unknown add-on type "${input.type.slice(0, 40).replace(/[^\x20-\x7e]/g, '?')}" (available: ${ADDON_TYPES.join(', ')})`,
      );
    if (input.name !== undefined) checkAddonName(input.name);
    const dedicated = input.dedicated ? this.#dedicated() : undefined;
    const shared = dedicated ? undefined : this.#admin().admin;
    const existing = await this.list(app);
    const names = new Set(existing.map((a) => a.name));
    let name = input.name;
    if (name === undefined) {
      name = input.type;
      for (let i = 2; names.has(name); i++) name = `${input.type}-${i}`;
    } else if (names.has(name))
      throw new MinipaasError(
        'MINIPAAS_ERR_ADDON_EXISTS',
        `app "${app.name}" already has an add-on named "${name}"`,
      );
    const taken = new Set(existing.map((a) => a.env_var));
    if (Object.hasOwn(app.env, 'DATABASE_URL')) taken.add('DATABASE_URL');
    const envVar = envVarFor(name, taken);
    if (taken.has(envVar) || Object.hasOwn(app.env, envVar))
      throw new MinipaasError(
        'MINIPAAS_ERR_CONFLICT',
        `app "${app.name}" already has the env var ${envVar}; choose another add-on name or unset it first`,
      );
    const database = databaseNameFor(app.name, name);
    if (shared && (await shared.exists(database)))
      throw new MinipaasError('MINIPAAS_ERR_CONFLICT', `a database or role named ${database} already exists`);
    const d: AppDatabase = { database, role: database, password: randomBytes(24).toString('base64url') };
    let ref: DedicatedServerRef | undefined;
    let admin: PostgresAdmin;
    if (dedicated) {
      const used = new Set((await this.dedicatedServers()).map((r) => r.port));
      ref = { database, port: await dedicated.allocatePort(used) };
      const server = ref;
      // create() removes what it made when it fails (and never touches a directory that existed).
      const serverUrl = await dedicated.create(server).catch((err: unknown) => {
        dedicated.release(server.port);
        throw err;
      });
      admin = new PostgresAdmin(serverUrl);
      try {
        await admin.create(d);
      } catch (err) {
        await dedicated.destroy(server);
        throw err;
      }
    } else {
      admin = shared as PostgresAdmin;
      await admin.create(d);
    }
    let row: AddonRow | undefined;
    try {
      const id = randomUUID();
      row = await this.#d.db
        .insertInto('addons')
        .values({
          id,
          app_id: app.id,
          name,
          type: input.type,
          dedicated: ref !== undefined,
          port: ref?.port ?? null,
          env_var: envVar,
          database_name: d.database,
          role_name: d.role,
          password: this.#d.apps.secretBox.seal(d.password, addonPasswordContext(id)),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      if (ref) dedicated?.release(ref.port);
      const updated = await this.#d.apps.patch(app.id, { secrets: { [envVar]: this.url(row) } });
      this.#d.log.info({ app: app.name, addon: name, database, port: ref?.port }, 'add-on created');
      return { app: updated, addon: row };
    } catch (err) {
      if (row) await this.#d.db.deleteFrom('addons').where('id', '=', row.id).execute();
      if (ref) await dedicated?.destroy(ref);
      else await admin.drop(d);
      if (err instanceof Error && /addons_app_id_(name|env_var)_key/.test(err.message))
        throw new MinipaasError(
          'MINIPAAS_ERR_ADDON_EXISTS',
          `app "${app.name}" already has an add-on named "${name}"`,
        );
      throw err;
    }
  }

  /**
   * Destroys an add-on: removes its env var (rolling the app), ends the database's sessions, drops
   * the database and the role, and forgets the add-on. `confirm` must repeat the add-on's name.
   */
  async destroy(appRef: string, name: string, confirm: string | undefined): Promise<void> {
    const app = await this.#d.apps.get(appRef);
    const row = await this.get(app, name);
    if (confirm !== name)
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `destroying add-on "${name}" deletes its database and every row in it: repeat its name to confirm (?confirm=${name}, CLI: --confirm ${name})`,
      );
    await this.#remove(app, row, true);
  }

  /**
   * Applies the `@minipaas/sql` migration (queues and streams, schema `minipaas`) to an add-on's
   * database, as the add-on's own role so the app owns what it creates. Idempotent.
   */
  async installSql(appRef: string, name: string): Promise<{ app: AppRow; addon: AddonRow }> {
    const app = await this.#d.apps.get(appRef);
    const addon = await this.get(app, name);
    const client = new pg.Client({ connectionString: this.url(addon) });
    client.on('error', (err) =>
      this.#d.log.warn({ err: err.message, addon: name }, 'sql:install connection error'),
    );
    await client.connect();
    try {
      await client.query(migrationSql('up'));
    } finally {
      await client.end();
    }
    this.#d.log.info({ app: app.name, addon: name }, '@minipaas/sql installed');
    return { app, addon };
  }

  /** Destroys every add-on of an app that is being deleted (its env no longer matters). */
  async destroyAll(app: AppRow): Promise<void> {
    for (const row of await this.list(app)) await this.#remove(app, row, false);
  }

  async #remove(app: AppRow, row: AddonRow, roll: boolean): Promise<void> {
    const ref = this.#ref(row);
    const dedicated = ref ? this.#dedicated() : undefined;
    const shared = ref ? undefined : this.#admin().admin;
    if (roll && Object.hasOwn(app.env, row.env_var))
      await this.#d.apps.patch(app.id, { env: { [row.env_var]: null } });
    if (ref) await dedicated?.destroy(ref);
    else await shared?.drop({ database: row.database_name, role: row.role_name });
    await this.#d.db.deleteFrom('addons').where('id', '=', row.id).execute();
    this.#d.log.info({ app: app.name, addon: row.name, database: row.database_name }, 'add-on destroyed');
  }
}
