import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type AgentAppState,
  type AppStatus,
  type AppView,
  type CreateAppInput,
  type MinipaasConfig,
  MinipaasError,
  type PatchAppInput,
} from '@minipaas/core';
import type { Kysely, Selectable } from 'kysely';
import type { Logger } from 'pino';
import type { RuntimeDriver } from '../runtime/runtime-driver.ts';
import type { AppsTable, Database, ProcessOverride } from '../store/schema.ts';
import type { ProjectService } from './project-service.ts';
import { buildSpec, defaultInstances, effectiveProcesses } from './spec-builder.ts';

export type AppRow = Selectable<AppsTable>;

export interface AppServiceDeps {
  db: Kysely<Database>;
  config: MinipaasConfig;
  driver: RuntimeDriver;
  projects: ProjectService;
  log: Logger;
}

/** Live status from the runtime's observed state, falling back to the stored status. */
export function liveStatus(stored: string, state: AgentAppState | null | undefined): AppStatus {
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
  constructor(deps: AppServiceDeps) {
    this.#d = deps;
  }

  urls(name: string): { url: string; pathUrl: string } {
    const { port, baseDomain } = this.#d.config.router;
    const p = port === 80 ? '' : `:${port}`;
    return { url: `http://${name}.${baseDomain}${p}/`, pathUrl: `http://${baseDomain}${p}/apps/${name}/` };
  }

  async view(app: AppRow, state?: AgentAppState | null): Promise<AppView> {
    const release = app.current_release
      ? await this.#d.db
          .selectFrom('releases')
          .select('commands')
          .where('app_id', '=', app.id)
          .where('version', '=', app.current_release)
          .executeTakeFirst()
      : null;
    const eff = effectiveProcesses(app, release ?? null);
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
      runtime: 'process',
      status: liveStatus(app.status, state),
      processes,
      env: app.env,
      healthcheckPath: app.healthcheck_path,
      currentRelease: app.current_release,
      ...this.urls(app.name),
      createdAt: new Date(app.created_at).toISOString(),
      updatedAt: new Date(app.updated_at).toISOString(),
    };
  }

  /** Observed state of one app, or null when the runtime does not answer. */
  async observed(name: string): Promise<AgentAppState | null> {
    try {
      return await this.#d.driver.get(name);
    } catch (err) {
      this.#d.log.warn({ err, app: name }, 'runtime did not answer; showing stored status');
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
    return this.#d.db
      .insertInto('apps')
      .values({
        id: randomUUID(),
        project_id: project.id,
        name,
        runtime: input.runtime,
        status: 'created',
        processes: JSON.stringify(processes),
        env: JSON.stringify(input.env ?? {}),
        healthcheck_path: input.healthcheckPath ?? null,
        description: input.description ?? input.displayName ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async list(projectRef?: string): Promise<AppRow[]> {
    let q = this.#d.db.selectFrom('apps').selectAll().orderBy('name');
    if (projectRef) {
      const p = await this.#d.projects.get(projectRef);
      q = q.where('project_id', '=', p.id);
    }
    return q.execute();
  }

  /** Finds an app by id or name. */
  async get(ref: string): Promise<AppRow> {
    const row = await this.#d.db
      .selectFrom('apps')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
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

  /** Pushes the app's desired state at its current release to the runtime (no-op without a release). */
  async apply(app: AppRow): Promise<AgentAppState | null> {
    if (!app.current_release || app.status === 'stopped') return null;
    const release = await this.#d.db
      .selectFrom('releases')
      .selectAll()
      .where('app_id', '=', app.id)
      .where('version', '=', app.current_release)
      .executeTakeFirst();
    if (!release) return null;
    return this.#d.driver.apply(buildSpec(app, release));
  }

  async patch(ref: string, input: PatchAppInput): Promise<AppRow> {
    const app = await this.get(ref);
    const env = { ...app.env };
    for (const [k, v] of Object.entries(input.env ?? {})) {
      if (v === null) delete env[k];
      else env[k] = v;
    }
    const processes = structuredClone(app.processes);
    for (const [type, p] of Object.entries(input.processes ?? {})) {
      processes[type] = { ...processes[type], ...p };
    }
    if (input.command) processes.web = { ...processes.web, command: input.command };
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
    if (updated.status === 'stopped') await this.#d.driver.remove(updated.name);
    else await this.apply(updated);
    return updated;
  }

  async scale(ref: string, counts: Record<string, number>): Promise<AppRow> {
    const app = await this.get(ref);
    const processes = structuredClone(app.processes);
    for (const [type, n] of Object.entries(counts)) processes[type] = { ...processes[type], instances: n };
    const updated = await this.#d.db
      .updateTable('apps')
      .set({ processes: JSON.stringify(processes), updated_at: new Date() })
      .where('id', '=', app.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await this.apply(updated);
    return updated;
  }

  async delete(ref: string): Promise<void> {
    const app = await this.get(ref);
    await this.#d.driver.remove(app.name);
    await this.#d.db.deleteFrom('apps').where('id', '=', app.id).execute();
    const home = this.#d.config.home;
    await rm(join(home, 'releases', app.name), { recursive: true, force: true });
    await rm(join(home, 'logs', app.name), { recursive: true, force: true });
  }
}
