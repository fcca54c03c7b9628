import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  APP_NAME_RE,
  type AppStatus,
  type AppView,
  type CreateAppInput,
  type MinipaasConfig,
  MinipaasError,
  type PatchAppInput,
  type ProcessSpec,
  type RuntimeAppState,
  type RuntimeSpec,
  type SecretBox,
  UUID_RE,
} from '@minipaas/core';
import type { Kysely, Selectable } from 'kysely';
import type { Logger } from 'pino';
import type { RuntimeRegistry } from '../runtime/runtime-registry.ts';
import {
  applyEnvChanges,
  appSecretRefs,
  forgetAppSecrets,
  openSecretValues,
  openSpecSecrets,
  secretBoxFor,
  secretStoresFor,
  viewEnv,
} from '../secrets/app-secrets.ts';
import type { SecretStores } from '../secrets/secret-store.ts';
import type { AppsTable, Database, ProcessOverride, ReleasesTable } from '../store/schema.ts';
import { AppIdentityService } from './app-identity.ts';
import { checkFormation, instanceTotal } from './formation.ts';
import type { ProjectService } from './project-service.ts';
import { buildSpec, defaultInstances, effectiveProcesses } from './spec-builder.ts';

export type AppRow = Selectable<AppsTable>;

export interface AppServiceDeps {
  db: Kysely<Database>;
  config: MinipaasConfig;
  runtimes: RuntimeRegistry;
  projects: ProjectService;
  log: Logger;
  /** Per-app OS identities (default: one built from `db`, `config` and `log`). */
  identity?: AppIdentityService;
  /** Seals and opens secret env vars (default: the platform's master key ring from `config`). */
  secrets?: SecretBox;
  /** Where secret env values go (default: from `config.secrets`, the built-in store around `secrets`). */
  secretStores?: SecretStores;
}

/** Live status from the runtime's observed state, falling back to the stored status. */
export function liveStatus(stored: string, state: RuntimeAppState | null | undefined): AppStatus {
  if (stored === 'deploying' || stored === 'stopped' || !state) return stored as AppStatus;
  const web = state.instances.filter((i) => i.processType === 'web');
  const all = state.instances;
  if (all.length === 0) return stored as AppStatus;
  const pool = web.length > 0 ? web : all;
  if (pool.some((i) => i.status === 'running')) return 'running';
  if (pool.every((i) => i.status === 'failed')) return state.release ? 'crashed' : 'failed';
  return stored as AppStatus;
}

export class AppService {
  readonly #d: AppServiceDeps;
  /** The apps' own uids/gids (also used by the deploy pipeline for builds). */
  readonly identity: AppIdentityService;
  /** Run before an app is deleted (e.g. destroying its add-ons); a throwing hook stops the delete. */
  readonly beforeDelete: Array<(app: AppRow) => Promise<void>> = [];
  /**
   * Complete a runtime spec built from the app's row and release (volumes, resource limits); run by
   * {@link AppService.specFor} in order.
   */
  readonly specHooks: Array<(app: AppRow, spec: RuntimeSpec) => Promise<void>> = [];
  #box: SecretBox | undefined;
  #stores: SecretStores | undefined;

  /** The secret box env vars are sealed with. */
  get secretBox(): SecretBox {
    this.#box ??= this.#d.secrets ?? secretBoxFor(this.#d.config);
    return this.#box;
  }

  /** The stores secret env vars are kept in (references in `env`, opened by {@link AppService.specFor}). */
  get secretStores(): SecretStores {
    this.#stores ??= this.#d.secretStores ?? secretStoresFor(this.#d.config, this.secretBox);
    return this.#stores;
  }

  constructor(deps: AppServiceDeps) {
    this.#d = deps;
    this.identity =
      deps.identity ?? new AppIdentityService({ db: deps.db, config: deps.config, log: deps.log });
  }

  urls(name: string): { url: string; pathUrl: string } {
    const { port, baseDomain } = this.#d.config.router;
    const p = port === 80 ? '' : `:${port}`;
    return { url: `http://${name}.${baseDomain}${p}/`, pathUrl: `http://${baseDomain}${p}/apps/${name}/` };
  }

  /** The app as answers show it; secret values only with `reveal` (the route checks the permission). */
  async view(app: AppRow, state?: RuntimeAppState | null, opts: { reveal?: boolean } = {}): Promise<AppView> {
    const eff = await this.#effective(app, app.processes);
    const processes: AppView['processes'] = {};
    for (const [type, o] of Object.entries(app.processes)) {
      processes[type] = { command: o.command ?? null, instances: o.instances ?? defaultInstances(type) };
    }
    for (const [type, p] of Object.entries(eff))
      processes[type] = { command: p.command, instances: p.instances };
    return {
      id: app.id,
      name: app.name,
      projectId: app.project_id,
      runtime: app.runtime === 'docker' || app.runtime === 'swarm' ? app.runtime : 'process',
      status: liveStatus(app.status, state),
      processes,
      ...(await viewEnv(this.secretStores, app.id, app.env, opts.reveal)),
      healthcheckPath: app.healthcheck_path,
      currentRelease: app.current_release,
      ...this.urls(app.name),
      createdAt: new Date(app.created_at).toISOString(),
      updatedAt: new Date(app.updated_at).toISOString(),
    };
  }

  /** Observed state of one app, or null when the runtime does not answer. */
  async observed(app: AppRow): Promise<RuntimeAppState | null> {
    try {
      return await this.#d.runtimes.forApp(app).get(app.name);
    } catch (err) {
      this.#d.log.warn({ err, app: app.name }, 'runtime did not answer; showing stored status');
      return null;
    }
  }

  async create(input: CreateAppInput, projectRef?: string): Promise<AppRow> {
    const name = input.name;
    const project = await this.#d.projects.get(projectRef ?? input.project ?? 'default');
    const clash = await this.#d.db
      .selectFrom('apps')
      .select('id')
      .where('name', '=', name)
      .executeTakeFirst();
    if (clash) throw new MinipaasError('MINIPAAS_ERR_APP_EXISTS', `an app named "${name}" already exists`);
    const processes: Record<string, ProcessOverride> = {};
    for (const [type, p] of Object.entries(input.processes ?? {})) {
      processes[type] = {
        ...(p.command ? { command: p.command } : {}),
        ...(p.instances !== undefined ? { instances: p.instances } : {}),
      };
    }
    if (input.command) processes.web = { ...processes.web, command: input.command };
    // The runtime must be one this platform runs (a clear 400 otherwise, before anything is stored).
    const runtime = input.runtime ?? this.#d.config.runtime.default;
    this.#d.runtimes.for(runtime);
    await this.checkLimits({ id: '', name }, effectiveProcesses({ processes }, null));
    const row = await this.#d.db
      .insertInto('apps')
      .values({
        id: randomUUID(),
        project_id: project.id,
        name,
        runtime,
        status: 'created',
        processes: JSON.stringify(processes),
        env: JSON.stringify(await applyEnvChanges(this.secretStores, '', {}, { env: input.env ?? {} })),
        healthcheck_path: input.healthcheckPath ?? null,
        description: input.description ?? input.displayName ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    try {
      await this.identity.userFor(row).then((u) => u ?? this.identity.allocate(row));
    } catch (err) {
      await this.#d.db.deleteFrom('apps').where('id', '=', row.id).execute(); // no uid: no app
      throw err;
    }
    return row;
  }

  async list(projectRef?: string): Promise<AppRow[]> {
    let q = this.#d.db.selectFrom('apps').selectAll().orderBy('name');
    if (projectRef) {
      const p = await this.#d.projects.get(projectRef);
      q = q.where('project_id', '=', p.id);
    }
    return q.execute();
  }

  /**
   * Finds an app by id (a UUID) or by name: the shape of `ref` decides which, so no app can be
   * named like another app's id. Anything else is a 400 before any query.
   */
  async get(ref: string): Promise<AppRow> {
    const byId = UUID_RE.test(ref);
    if (!byId && !APP_NAME_RE.test(ref))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `"${ref.slice(0, 60).replace(/[^\x20-\x7e]/g, '?')}" is neither an app name nor an app id`,
      );
    const row = await this.#d.db
      .selectFrom('apps')
      .selectAll()
      .where(byId ? 'id' : 'name', '=', byId ? ref.toLowerCase() : ref)
      .executeTakeFirst();
    if (!row) throw new MinipaasError('MINIPAAS_ERR_APP_NOT_FOUND', `app "${ref}" not found`);
    return row;
  }

  async setStatus(id: string, status: AppStatus, currentRelease?: number): Promise<void> {
    await this.#d.db
      .updateTable('apps')
      .set({
        status,
        updated_at: new Date(),
        ...(currentRelease !== undefined ? { current_release: currentRelease } : {}),
      })
      .where('id', '=', id)
      .execute();
  }

  /** Moves an app that has no release yet to another runtime (minipaas.yaml `runtime:` on its first deploy). */
  async setRuntime(id: string, runtime: 'process' | 'docker' | 'swarm'): Promise<AppRow> {
    const row = await this.#d.db
      .updateTable('apps')
      .set({ runtime, updated_at: new Date() })
      .where('id', '=', id)
      .where('current_release', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!row)
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        'the runtime of an app that has a release cannot change',
      );
    return row;
  }

  /** The runtime spec of `app` at `release`: buildSpec, then every {@link AppService.specHooks} entry. */
  async specFor(app: AppRow, release: Selectable<ReleasesTable>): Promise<RuntimeSpec> {
    const spec = buildSpec(app, release, await this.identity.userFor(app));
    await openSpecSecrets(this.secretStores, app.id, spec);
    for (const hook of this.specHooks) await hook(app, spec);
    return spec;
  }

  /**
   * The secret values of `app` (its env and its current release's snapshot) that log lines must not show:
   * the log API masks them whatever the runtime (the agent and the docker driver already mask at the source).
   */
  async logMask(app: AppRow): Promise<string[]> {
    const release = app.current_release
      ? await this.#d.db
          .selectFrom('releases')
          .select('config_env')
          .where('app_id', '=', app.id)
          .where('version', '=', app.current_release)
          .executeTakeFirst()
      : undefined;
    return openSecretValues(this.secretStores, app.id, app.env, release?.config_env);
  }

  /** Pushes the app's desired state at its current release to the runtime (no-op without a release). */
  async apply(app: AppRow): Promise<RuntimeAppState | null> {
    if (!app.current_release || app.status === 'stopped') return null;
    const release = await this.#d.db
      .selectFrom('releases')
      .selectAll()
      .where('app_id', '=', app.id)
      .where('version', '=', app.current_release)
      .executeTakeFirst();
    if (!release) return null;
    return this.#d.runtimes.forApp(app).apply(await this.specFor(app, release));
  }

  async patch(ref: string, input: PatchAppInput): Promise<AppRow> {
    const app = await this.get(ref);
    // Null-prototype: a variable named like an Object.prototype member is just a key. Secrets are sealed.
    const env = await applyEnvChanges(this.secretStores, app.id, app.env, {
      ...(input.env ? { env: input.env } : {}),
      ...(input.secrets ? { secrets: input.secrets } : {}),
    });
    const processes = structuredClone(app.processes);
    for (const [type, p] of Object.entries(input.processes ?? {})) {
      processes[type] = { ...(Object.hasOwn(processes, type) ? processes[type] : {}), ...p };
    }
    if (input.command) processes.web = { ...processes.web, command: input.command };
    if (input.processes || input.command) await this.checkLimits(app, await this.#effective(app, processes));
    const updated = await this.#d.db
      .updateTable('apps')
      .set({
        env: JSON.stringify(env),
        processes: JSON.stringify(processes),
        updated_at: new Date(),
        ...(input.description !== undefined ? { description: input.description } : {}),
        ...(input.healthcheckPath !== undefined ? { healthcheck_path: input.healthcheckPath } : {}),
        ...(input.status === 'stopped' ? { status: 'stopped' } : {}),
        ...(input.status === 'running' && app.status === 'stopped'
          ? { status: app.current_release ? 'running' : 'created' }
          : {}),
      })
      .where('id', '=', app.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (updated.status === 'stopped') await this.#d.runtimes.forApp(updated).remove(updated.name);
    else await this.#applyOrRestore(app, updated);
    return updated;
  }

  /**
   * Pushes `updated` to the runtime; when the runtime refuses it as invalid (a 4xx), the row is put
   * back as `previous` was, so a rejected request changes nothing. Other failures (the runtime is
   * down) keep the new desired state for the reconciler.
   */
  async #applyOrRestore(previous: AppRow, updated: AppRow): Promise<void> {
    try {
      await this.apply(updated);
    } catch (err) {
      if (err instanceof MinipaasError && err.status >= 400 && err.status < 500) {
        await this.#d.db
          .updateTable('apps')
          .set({
            env: JSON.stringify(previous.env),
            processes: JSON.stringify(previous.processes),
            description: previous.description,
            healthcheck_path: previous.healthcheck_path,
            status: previous.status,
            updated_at: previous.updated_at,
          })
          .where('id', '=', previous.id)
          .execute();
      }
      throw err;
    }
  }

  /** The app's process table with its current release's commands (what scaling may address). */
  async #effective(app: AppRow, processes: AppRow['processes']): Promise<Record<string, ProcessSpec>> {
    const release = app.current_release
      ? await this.#d.db
          .selectFrom('releases')
          .select('commands')
          .where('app_id', '=', app.id)
          .where('version', '=', app.current_release)
          .executeTakeFirst()
      : null;
    return effectiveProcesses({ processes }, release ?? null);
  }

  /** Instances the other apps are meant to run (stopped apps run none). */
  async #instancesElsewhere(appId: string): Promise<number> {
    const rows = await this.#d.db
      .selectFrom('apps')
      .leftJoin('releases', (j) =>
        j.onRef('releases.app_id', '=', 'apps.id').onRef('releases.version', '=', 'apps.current_release'),
      )
      .select(['apps.id', 'apps.status', 'apps.processes', 'releases.commands'])
      .where('apps.id', '!=', appId)
      .execute();
    let n = 0;
    for (const r of rows) {
      if (r.status === 'stopped') continue;
      n += instanceTotal(
        effectiveProcesses({ processes: r.processes }, r.commands ? { commands: r.commands } : null),
      );
    }
    return n;
  }

  /** Throws when `processes` (the app's whole formation) would exceed a configured limit. */
  async checkLimits(app: Pick<AppRow, 'id' | 'name'>, processes: Record<string, ProcessSpec>): Promise<void> {
    checkFormation(app.name, processes, await this.#instancesElsewhere(app.id), this.#d.config.apps);
  }

  /** Saves the app's new process table (limits already checked) and pushes it to the runtime. */
  async #saveFormation(app: AppRow, processes: AppRow['processes']): Promise<AppRow> {
    const updated = await this.#d.db
      .updateTable('apps')
      .set({ processes: JSON.stringify(processes), updated_at: new Date() })
      .where('id', '=', app.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await this.#applyOrRestore(app, updated);
    return updated;
  }

  async scale(ref: string, counts: Record<string, number>): Promise<AppRow> {
    const app = await this.get(ref);
    const current = await this.#effective(app, app.processes);
    const processes: AppRow['processes'] = structuredClone(app.processes);
    for (const [type, n] of Object.entries(counts)) {
      // Before the first release only `web` may be sized ahead (seed 002 scales a new service).
      const ahead = type === 'web' && !app.current_release;
      if (!Object.hasOwn(current, type) && !ahead) {
        const known = Object.keys(current);
        throw new MinipaasError(
          'MINIPAAS_ERR_VALIDATION',
          `app "${app.name}" has no process type "${type}"${known.length ? ` (it has: ${known.join(', ')})` : app.current_release ? '' : '; deploy it first'}`,
        );
      }
      processes[type] = { ...(Object.hasOwn(processes, type) ? processes[type] : {}), instances: n };
    }
    const next = await this.#effective(app, processes);
    for (const [type, n] of Object.entries(counts))
      if (!Object.hasOwn(next, type)) next[type] = { command: '', instances: n };
    await this.checkLimits(app, next);
    return this.#saveFormation(app, processes);
  }

  async delete(ref: string): Promise<void> {
    const app = await this.get(ref);
    // Taken before the rows go; the store forgets them once the app is gone (an external store being
    // down does not keep a half-deleted app: the entries left are logged by path, never by value).
    const secretRefs = await appSecretRefs(this.#d.db, this.secretStores, app.id);
    for (const hook of this.beforeDelete) await hook(app);
    await this.#d.runtimes.forApp(app).remove(app.name);
    await this.identity.free(app);
    await this.#d.db.deleteFrom('apps').where('id', '=', app.id).execute();
    const home = this.#d.config.home;
    await rm(join(home, 'releases', app.name), { recursive: true, force: true });
    await rm(join(home, 'logs', app.name), { recursive: true, force: true });
    for (const f of await forgetAppSecrets(this.secretStores, app.id, secretRefs))
      this.#d.log.warn(
        { app: app.name, appId: app.id, secret: f.name, err: f.error },
        "the secret store still holds a deleted app's secret; delete it there",
      );
  }
}
