/**
 * Preview environments (issue 10, docs/git.md; Heroku review apps): an app with `previews: true` gets an
 * app `APP-BRANCH` (sanitised) for every other branch pushed to it (git push, or a push webhook) and for
 * every open pull request (webhook), created with the parent's configuration (env vars and secrets,
 * processes, health check, resources, runtime) and served at `APP-BRANCH.BASE_DOMAIN`. Deleting the branch
 * or closing the pull request destroys it.
 */
import { createHash } from 'node:crypto';
import { type CreateAppInput, type DeploymentView, MinipaasError } from '@minipaas/core';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { applyEnvChanges, viewEnv } from '../secrets/app-secrets.ts';
import type { AppRow, AppService } from '../services/app-service.ts';
import type { Database } from '../store/schema.ts';
import type { GitService, PreviewHooks } from './git-service.ts';

type PreviewTables = {
  git_previews: {
    app_id: string;
    parent_id: string;
    branch: string;
    pull_request: number | null;
    created_at: Date | string;
  };
};

/** A preview as the API lists it. */
export interface PreviewView {
  app: string;
  branch: string;
  pullRequest: number | null;
  status: string;
  currentRelease: number | null;
  url: string;
  createdAt: string;
}

const MAX_NAME = 40;

/** `APP-BRANCH` as an app name: lowercase, dashes for anything else, at most 40 characters. */
export function previewName(parent: string, branch: string): string {
  const slug =
    branch
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'branch';
  const name = `${parent}-${slug}`;
  if (name.length <= MAX_NAME) return name;
  const hash = createHash('sha256').update(branch).digest('hex').slice(0, 6);
  return `${name.slice(0, MAX_NAME - 7).replace(/-+$/, '')}-${hash}`;
}

export interface PreviewServiceDeps {
  db: Kysely<Database>;
  apps: AppService;
  git: GitService;
  log: Logger;
}

export class PreviewService implements PreviewHooks {
  readonly #d: PreviewServiceDeps;
  readonly #db: Kysely<Database & PreviewTables>;

  constructor(deps: PreviewServiceDeps) {
    this.#d = deps;
    this.#db = deps.db.withTables<PreviewTables>();
  }

  /** Whether the app has previews turned on. */
  async enabled(parent: Pick<AppRow, 'id'>): Promise<boolean> {
    return (await this.#d.git.get(parent))?.previews === true;
  }

  async list(parent: AppRow): Promise<PreviewView[]> {
    const rows = await this.#db
      .selectFrom('git_previews')
      .innerJoin('apps', 'apps.id', 'git_previews.app_id')
      .select([
        'apps.name',
        'apps.status',
        'apps.current_release',
        'git_previews.branch',
        'git_previews.pull_request',
        'git_previews.created_at',
      ])
      .where('git_previews.parent_id', '=', parent.id)
      .orderBy('git_previews.created_at')
      .execute();
    return rows.map((r) => ({
      app: r.name,
      branch: r.branch,
      pullRequest: r.pull_request,
      status: r.status,
      currentRelease: r.current_release,
      url: this.#d.apps.urls(r.name).url,
      createdAt: new Date(r.created_at).toISOString(),
    }));
  }

  /** The preview app of `branch`, created (with the parent's configuration) when missing. */
  async ensure(parent: AppRow, branch: string, pullRequest: number | null = null): Promise<AppRow> {
    const existing = await this.#db
      .selectFrom('git_previews')
      .select('app_id')
      .where('parent_id', '=', parent.id)
      .where('branch', '=', branch)
      .executeTakeFirst();
    if (existing) {
      if (pullRequest !== null)
        await this.#db
          .updateTable('git_previews')
          .set({ pull_request: pullRequest })
          .where('app_id', '=', existing.app_id)
          .execute();
      return this.#d.apps.get(existing.app_id);
    }
    let name = previewName(parent.name, branch);
    const taken = await this.#db.selectFrom('apps').select('id').where('name', '=', name).executeTakeFirst();
    if (taken)
      name = previewName(
        parent.name,
        `${branch}-${createHash('sha256').update(parent.id).digest('hex').slice(0, 4)}`,
      );
    const app = await this.#d.apps.create({
      name,
      project: parent.project_id,
      runtime: parent.runtime,
      description: `preview of ${parent.name} (${branch})`,
    } as CreateAppInput);
    try {
      await this.#copyConfig(parent, app);
      await this.#db
        .insertInto('git_previews')
        .values({
          app_id: app.id,
          parent_id: parent.id,
          branch,
          pull_request: pullRequest,
          created_at: new Date(),
        })
        .execute();
      const source = await this.#d.git.get(parent);
      if (source?.url) {
        const credential = this.#d.git.credential(source);
        await this.#d.git.configure(app, {
          url: source.url,
          ref: branch,
          ...(credential?.kind === 'token' ? { token: credential.value } : {}),
          ...(credential?.kind === 'ssh-key' ? { sshKey: credential.value } : {}),
        });
      }
    } catch (err) {
      await this.#d.apps.delete(app.id).catch(() => undefined);
      throw err;
    }
    this.#d.log.info({ parent: parent.name, preview: app.name, branch }, 'preview app created');
    return this.#d.apps.get(app.id);
  }

  /** Env vars (secrets sealed again for the preview), processes, health check, resources. */
  async #copyConfig(parent: AppRow, app: AppRow): Promise<void> {
    const stores = this.#d.apps.secretStores;
    const shown = await viewEnv(stores, parent.id, parent.env, true);
    const config: Record<string, string> = {};
    const secrets: Record<string, string> = {};
    for (const [k, v] of Object.entries(shown.env)) (shown.secrets.includes(k) ? secrets : config)[k] = v;
    const env = await applyEnvChanges(stores, app.id, {}, { env: config, secrets });
    await this.#db
      .updateTable('apps')
      .set({
        env: JSON.stringify(env),
        processes: JSON.stringify(parent.processes),
        healthcheck_path: parent.healthcheck_path,
        cpu_millicores: parent.cpu_millicores,
        memory_mb: parent.memory_mb,
        restart_policy: parent.restart_policy,
        updated_at: new Date(),
      })
      .where('id', '=', app.id)
      .execute();
  }

  /** Builds `sha` of the parent's repository URL as the preview of `branch` (webhooks). */
  async deployFromUrl(
    parent: AppRow,
    branch: string,
    sha: string,
    pullRequest: number | null = null,
  ): Promise<DeploymentView> {
    const app = await this.ensure(parent, branch, pullRequest);
    return this.#d.git.build(app, { ref: sha });
  }

  async deployPushed(
    parent: AppRow,
    branch: string,
    commit: { sha: string; message: string },
    objectEnv: Record<string, string>,
    say: (line: string) => void,
  ): Promise<boolean> {
    const app = await this.ensure(parent, branch);
    say(
      `-----> Preview of ${branch}: deploying ${commit.sha.slice(0, 7)} (${commit.message}) to ${app.name}`,
    );
    const started = await this.#d.git.deployCommit(app, this.#d.git.pushes.path(parent.id), commit, {
      url: null,
      credential: null,
      objectEnv,
    });
    return this.#d.git.follow(started.id, say);
  }

  async destroy(parent: AppRow, branch: string, say?: (line: string) => void): Promise<void> {
    const row = await this.#db
      .selectFrom('git_previews')
      .select('app_id')
      .where('parent_id', '=', parent.id)
      .where('branch', '=', branch)
      .executeTakeFirst();
    if (!row) return;
    const app = await this.#d.apps.get(row.app_id);
    say?.(`-----> Destroying the preview ${app.name} of ${branch}`);
    await this.#d.apps.delete(app.id);
    this.#d.log.info({ parent: parent.name, preview: app.name, branch }, 'preview app destroyed');
  }

  /** Destroys every preview of `parent` (it is being deleted). */
  async destroyAll(parent: AppRow): Promise<void> {
    const rows = await this.#db
      .selectFrom('git_previews')
      .select('branch')
      .where('parent_id', '=', parent.id)
      .execute();
    for (const r of rows) await this.destroy(parent, r.branch);
  }

  /** Throws unless `app` has previews on (for the API). */
  async requireEnabled(app: AppRow): Promise<void> {
    if (!(await this.enabled(app)))
      throw new MinipaasError(
        'MINIPAAS_ERR_CONFLICT',
        `"${app.name}" has no previews; turn them on with minipaas previews:enable ${app.name}`,
      );
  }
}
