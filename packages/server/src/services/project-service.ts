import { randomUUID } from 'node:crypto';
import { type CreateProjectInput, MinipaasError, type ProjectView } from '@minipaas/core';
import type { Kysely, Selectable } from 'kysely';
import type { Database, ProjectsTable } from '../store/schema.ts';

export function projectView(p: Selectable<ProjectsTable>): ProjectView {
  return {
    id: p.id,
    name: p.name,
    slug: p.slug,
    description: p.description,
    createdAt: new Date(p.created_at).toISOString(),
    teamId: p.team_id,
  };
}

export class ProjectService {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Creates a project owned by `teamId` (default: the platform team `default`). */
  async create(input: CreateProjectInput, teamId = 'default'): Promise<ProjectView> {
    if (!input.slug)
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'project name must contain letters or digits');
    const clash = await this.#db
      .selectFrom('projects')
      .select('id')
      .where('slug', '=', input.slug)
      .executeTakeFirst();
    if (clash)
      throw new MinipaasError(
        'MINIPAAS_ERR_PROJECT_EXISTS',
        `a project with slug "${input.slug}" already exists`,
      );
    const row = await this.#db
      .insertInto('projects')
      .values({
        id: randomUUID(),
        name: input.name,
        slug: input.slug,
        description: input.description ?? null,
        team_id: teamId,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return projectView(row);
  }

  async list(): Promise<ProjectView[]> {
    const rows = await this.#db.selectFrom('projects').selectAll().orderBy('created_at').execute();
    return rows.map(projectView);
  }

  /** Finds a project by id or slug. */
  async get(ref: string): Promise<ProjectView> {
    // Ids are UUIDs (or "default"), slugs are [a-z0-9-]: anything else is bad input, not a query.
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/.test(ref))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `"${ref.slice(0, 60).replace(/[^\x20-\x7e]/g, '?')}" is neither a project slug nor a project id`,
      );
    const row = await this.#db
      .selectFrom('projects')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', ref), eb('slug', '=', ref)]))
      .executeTakeFirst();
    if (!row) throw new MinipaasError('MINIPAAS_ERR_PROJECT_NOT_FOUND', `project "${ref}" not found`);
    return projectView(row);
  }

  async delete(ref: string): Promise<void> {
    const p = await this.get(ref);
    if (p.id === 'default')
      throw new MinipaasError('MINIPAAS_ERR_CONFLICT', 'the default project cannot be deleted');
    const app = await this.#db
      .selectFrom('apps')
      .select('name')
      .where('project_id', '=', p.id)
      .executeTakeFirst();
    if (app)
      throw new MinipaasError(
        'MINIPAAS_ERR_PROJECT_NOT_EMPTY',
        `project "${p.slug}" still has apps (e.g. "${app.name}")`,
      );
    await this.#db.deleteFrom('projects').where('id', '=', p.id).execute();
  }
}
