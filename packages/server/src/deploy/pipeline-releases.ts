/**
 * What the pipeline needs from the release store and the release phases, as small interfaces, plus the
 * inline implementation the pipeline used before ReleaseStore and phases.ts existed (still the default
 * when they are not wired in).
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { RuntimeSpec } from '@minipaas/core';
import { type Artifact, MinipaasError } from '@minipaas/core';
import type { RunAs } from '@minipaas/runtime-process';
import type { Kysely, Selectable } from 'kysely';
import type { AppRow } from '../services/app-service.ts';
import type { Database, ReleasesTable } from '../store/schema.ts';

export type ReleaseRow = Selectable<ReleasesTable>;

/** The snapshot of a new release. */
export interface NewRelease {
  app: AppRow;
  version: number;
  dir: string;
  stack: string;
  commands: Record<string, string>;
  env: Record<string, string>;
  source: string;
  appJson: unknown;
  releaseCommand: string | null;
  deploymentId: string;
  /** What runs when it is not `dir` (an image of the docker runtime). */
  artifact?: Artifact;
}

export interface PipelineReleases {
  nextVersion(appId: string): Promise<number>;
  create(input: NewRelease): Promise<ReleaseRow>;
  /** A new release redeploying `targetVersion`'s artifact and config (a rollback), status pending. */
  createRollback(app: AppRow, targetVersion: number, deploymentId: string): Promise<ReleaseRow>;
  get(appId: string, version: number): Promise<ReleaseRow>;
  markSucceeded(release: ReleaseRow): Promise<void>;
  markFailed(release: ReleaseRow): Promise<void>;
  /** Retention: old release artifacts and old deployment rows. */
  prune(app: AppRow): Promise<void>;
}

/** Release-phase hooks around the switch (Procfile `release:`, app.json scripts and env). */
export interface PipelinePhaseContext {
  app: AppRow;
  release: ReleaseRow;
  /** Appends a line to the deployment log. */
  say(line: string): Promise<void>;
  signal: AbortSignal;
  /** Who release commands run as: the app's own user (null: no switch, the platform is not root). */
  user: RunAs | null;
  /** Runs a phase's command in the release's image (releases whose artifact is an image). */
  runInImage?: ImageCommandRunner;
  /** The release's runtime spec: its env (secrets opened) and the values its output must not show. */
  spec?: RuntimeSpec;
}

/** Runs `command` in `image` with `env`, streaming output lines; the exit code, or null when killed. */
export type ImageCommandRunner = (o: {
  image: string;
  command: string;
  env: Record<string, string>;
  onLine(line: string): void;
  signal: AbortSignal;
  timeoutMs: number;
}) => Promise<{ code: number | null; timedOut: boolean }>;

export interface PipelinePhases {
  /** app.json env defaults/required/generators applied to the app before its release is recorded. */
  prepareConfig(app: AppRow, appJson: unknown): Promise<AppRow>;
  /** Before the switch: failure aborts the deployment (throws a MinipaasError). */
  runBeforeSwitch(ctx: PipelinePhaseContext): Promise<void>;
  /** After the switch: logs only. */
  runAfterSwitch(ctx: PipelinePhaseContext): Promise<void>;
}

/** No phases: what the pipeline did before release phases existed. */
export const NO_PHASES: PipelinePhases = {
  prepareConfig: async (app) => app,
  runBeforeSwitch: async () => undefined,
  runAfterSwitch: async () => undefined,
};

/** The pipeline's own release rows (used until the ReleaseStore is wired in). */
export class InlineReleases implements PipelineReleases {
  readonly #db: Kysely<Database>;
  readonly #keep: number;
  readonly #keepDeployments: number;

  constructor(db: Kysely<Database>, keepReleases: number, keepDeployments: number) {
    this.#db = db;
    this.#keep = keepReleases;
    this.#keepDeployments = keepDeployments;
  }

  async nextVersion(appId: string): Promise<number> {
    const last = await this.#db
      .selectFrom('releases')
      .select((eb) => eb.fn.max('version').as('v'))
      .where('app_id', '=', appId)
      .executeTakeFirst();
    return Number(last?.v ?? 0) + 1;
  }

  async create(r: NewRelease): Promise<ReleaseRow> {
    return this.#db
      .insertInto('releases')
      .values({
        id: randomUUID(),
        app_id: r.app.id,
        version: r.version,
        dir: r.dir,
        stack: r.stack,
        commands: JSON.stringify(r.commands),
        env: JSON.stringify(r.env),
        source: r.source,
        artifact: JSON.stringify(r.artifact ?? { kind: 'directory', path: r.dir }),
        config_env: JSON.stringify(r.app.env),
        formation: JSON.stringify(r.app.processes),
        app_json: r.appJson === null || r.appJson === undefined ? null : JSON.stringify(r.appJson),
        release_command: r.releaseCommand,
        deployment_id: r.deploymentId,
        status: 'pending',
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async createRollback(app: AppRow, targetVersion: number, deploymentId: string): Promise<ReleaseRow> {
    const target = await this.get(app.id, targetVersion);
    return this.#db
      .insertInto('releases')
      .values({
        ...target,
        id: randomUUID(),
        version: await this.nextVersion(app.id),
        commands: JSON.stringify(target.commands),
        env: JSON.stringify(target.env),
        artifact: JSON.stringify(target.artifact ?? { kind: 'directory', path: target.dir }),
        config_env: JSON.stringify(target.config_env),
        formation: JSON.stringify(target.formation),
        app_json: target.app_json === null ? null : JSON.stringify(target.app_json),
        rollback_of: targetVersion,
        deployment_id: deploymentId,
        status: 'pending',
        created_at: new Date(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async get(appId: string, version: number): Promise<ReleaseRow> {
    const row = await this.#db
      .selectFrom('releases')
      .selectAll()
      .where('app_id', '=', appId)
      .where('version', '=', version)
      .executeTakeFirst();
    if (!row) throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `release v${version} not found`);
    return row;
  }

  /** A rollback that went live also puts the app's env vars back as they were (as Heroku does). */
  async markSucceeded(release: ReleaseRow): Promise<void> {
    await this.#db
      .updateTable('releases')
      .set({ status: 'succeeded' })
      .where('id', '=', release.id)
      .execute();
    if (release.rollback_of !== null)
      await this.#db
        .updateTable('apps')
        .set({ env: JSON.stringify(release.config_env ?? {}), updated_at: new Date() })
        .where('id', '=', release.app_id)
        .execute();
  }

  async markFailed(release: ReleaseRow): Promise<void> {
    await this.#db.updateTable('releases').set({ status: 'failed' }).where('id', '=', release.id).execute();
  }

  /**
   * Keeps the newest `keepReleases` releases (and always the current one) and the newest
   * `keepDeployments` finished deployment rows (the serving one and unfinished ones always).
   */
  async prune(app: AppRow): Promise<void> {
    const fresh = await this.#db
      .selectFrom('apps')
      .select('current_release')
      .where('id', '=', app.id)
      .executeTakeFirst();
    const rows = await this.#db
      .selectFrom('releases')
      .select(['id', 'version', 'dir', 'rollback_of'])
      .where('app_id', '=', app.id)
      .orderBy('version', 'desc')
      .execute();
    const inUse = new Set(rows.slice(0, this.#keep).map((r) => r.dir));
    for (const r of rows.slice(this.#keep)) {
      if (r.version === fresh?.current_release) continue;
      if (!inUse.has(r.dir)) await rm(r.dir, { recursive: true, force: true });
      await this.#db.deleteFrom('releases').where('id', '=', r.id).execute();
    }
    const finished = await this.#db
      .selectFrom('deployments')
      .select('id')
      .where('app_id', '=', app.id)
      .where('status', 'in', ['failed', 'cancelled', 'stopped'])
      .orderBy('created_at', 'desc')
      .offset(this.#keepDeployments)
      .limit(10_000)
      .execute();
    if (finished.length > 0)
      await this.#db
        .deleteFrom('deployments')
        .where(
          'id',
          'in',
          finished.map((r) => r.id),
        )
        .execute();
  }
}
