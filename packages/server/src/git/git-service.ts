/**
 * An app's git source (docs/git.md): its repository URL and ref, an optional credential sealed by the
 * platform's SecretBox (an HTTPS token or an SSH deploy key; never returned, logged or put in a URL), and
 * builds of the ref's newest commit (or of a given ref or commit) through the deploy pipeline: the commit
 * is fetched into the app's mirror and its tree staged like an upload, so the deployment and its release
 * record the commit SHA and subject.
 */
import { rm } from 'node:fs/promises';
import type { DeploymentView, MinipaasConfig, SecretBox } from '@minipaas/core';
import { MinipaasError } from '@minipaas/core';
import { type Kysely, sql } from 'kysely';
import type { Logger } from 'pino';
import type { DeployService } from '../deploy/deploy-service.ts';
import type { AppRow } from '../services/app-service.ts';
import type { Database } from '../store/schema.ts';
import { type HookHandler, ZERO_SHA } from './git-http.ts';
import { GitMirror } from './git-mirror.ts';
import type { GitCredential } from './git-runner.ts';
import { gitCredentialContext } from './git-secrets.ts';
import {
  branchOf,
  checkGitRef,
  checkGitUrl,
  type GitSourceInput,
  redactUrl,
  splitUrlCredentials,
} from './git-url.ts';
import { PushRepos } from './push-repos.ts';

/** The git tables of migration 20261130000004_git.sql. */
export type GitTables = {
  git_sources: {
    app_id: string;
    /** null: the app deploys by `git push` only (settings such as previews without a repository URL). */
    url: string | null;
    ref: string;
    credential_kind: string | null;
    credential: string | null;
    sync_interval_seconds: number | null;
    synced_sha: string | null;
    synced_at: Date | string | null;
    previews: boolean;
    created_at: Date | string;
    updated_at: Date | string;
  };
};

export type GitDb = Kysely<Database & GitTables>;
export type GitSourceRow = GitTables['git_sources'];

/** An app's git source as the API shows it (the credential only by kind). */
export interface GitSourceView {
  url: string | null;
  ref: string;
  credential: 'token' | 'ssh-key' | null;
  sync: { intervalSeconds: number } | null;
  previews: boolean;
}

/** What `PUT /api/v1/apps/{id}/git` may set. */
export interface GitSourceSettings extends Omit<GitSourceInput, 'syncIntervalSeconds'> {
  /** An HTTPS token (`TOKEN` or `USER:TOKEN`); null removes the credential, undefined keeps it. */
  token?: string | null;
  /** An OpenSSH private key (deploy key); null removes the credential. */
  sshKey?: string | null;
  /** Auto-sync interval in seconds; null turns it off. */
  syncIntervalSeconds?: number | null;
  previews?: boolean;
}

/** What a push to another branch does when the app has previews (git/preview-service.ts). */
export interface PreviewHooks {
  /** Deploys `commit` of the push repository as the preview of `branch`; true when it went live. */
  deployPushed(
    parent: AppRow,
    branch: string,
    commit: { sha: string; message: string },
    objectEnv: Record<string, string>,
    say: (line: string) => void,
  ): Promise<boolean>;
  /** Destroys the preview of `branch`, if there is one. */
  destroy(parent: AppRow, branch: string, say?: (line: string) => void): Promise<void>;
}

export interface GitServiceDeps {
  db: Kysely<Database>;
  config: MinipaasConfig;
  deploys: DeployService;
  box: SecretBox;
  log: Logger;
  /** Node binary that runs the pre-receive hook (default: this process's). */
  nodeBin?: string;
}

export class GitService {
  readonly #d: GitServiceDeps;
  readonly #db: GitDb;
  readonly mirror: GitMirror;
  /** The repositories `git push` writes to. */
  readonly pushes: PushRepos;
  /** Preview environments (set by the control plane once built: they need this service). */
  previews: PreviewHooks | null = null;
  /** One fetch and export at a time per app (they share the app's mirror). */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(deps: GitServiceDeps) {
    this.#d = deps;
    this.#db = deps.db.withTables<GitTables>();
    this.mirror = new GitMirror(deps.config.home);
    this.pushes = new PushRepos(
      deps.config.home,
      deps.nodeBin ?? process.execPath,
      deps.config.uploads.maxBytes,
    );
  }

  async get(app: Pick<AppRow, 'id'>): Promise<GitSourceRow | undefined> {
    return this.#db.selectFrom('git_sources').selectAll().where('app_id', '=', app.id).executeTakeFirst();
  }

  view(row: GitSourceRow): GitSourceView {
    return {
      url: row.url === null ? null : redactUrl(row.url),
      ref: row.ref,
      credential: (row.credential_kind as GitSourceView['credential']) ?? null,
      sync: row.sync_interval_seconds ? { intervalSeconds: row.sync_interval_seconds } : null,
      previews: row.previews,
    };
  }

  /**
   * Sets the app's git source. A URL with `user:token@` keeps the token as the credential (sealed) and
   * stores the URL without it. Validates everything before writing anything.
   */
  async configure(app: AppRow, s: GitSourceSettings): Promise<GitSourceRow> {
    const split = splitUrlCredentials(s.url);
    const url = checkGitUrl(split.url);
    const ref = checkGitRef(s.ref);
    if (s.token && s.sshKey)
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'give a token or an SSH key, not both');
    const token = s.token ?? split.token;
    let credential: { kind: string | null; sealed: string | null } | undefined;
    if (token) {
      if (!/^https?:\/\//i.test(url))
        throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'an HTTPS token needs an https:// repository URL');
      credential = { kind: 'token', sealed: this.#d.box.seal(token, gitCredentialContext(app.id)) };
    } else if (s.sshKey) {
      if (!/^-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+-----END [A-Z ]*PRIVATE KEY-----\s*$/.test(s.sshKey))
        throw new MinipaasError(
          'MINIPAAS_ERR_VALIDATION',
          'sshKey must be a private key in PEM/OpenSSH format',
        );
      if (/^https?:\/\//i.test(url))
        throw new MinipaasError(
          'MINIPAAS_ERR_VALIDATION',
          'an SSH deploy key needs an ssh:// or git@host: URL',
        );
      credential = { kind: 'ssh-key', sealed: this.#d.box.seal(s.sshKey, gitCredentialContext(app.id)) };
    } else if (s.token === null || s.sshKey === null) credential = { kind: null, sealed: null };
    const values = {
      url,
      ref,
      ...(credential ? { credential_kind: credential.kind, credential: credential.sealed } : {}),
      ...(s.syncIntervalSeconds !== undefined ? { sync_interval_seconds: s.syncIntervalSeconds } : {}),
      ...(s.previews !== undefined ? { previews: s.previews } : {}),
      // A changed source is synced afresh.
      synced_sha: null,
      synced_at: null,
      updated_at: new Date(),
    };
    return this.#db
      .insertInto('git_sources')
      .values({ app_id: app.id, previews: false, created_at: new Date(), ...values })
      .onConflict((oc) => oc.column('app_id').doUpdateSet(values))
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /**
   * Changes settings (ref, previews, auto-sync) without touching the URL; an app without a source gets a
   * URL-less one (it deploys by git push).
   */
  async updateSettings(
    app: AppRow,
    s: { ref?: string; previews?: boolean; syncIntervalSeconds?: number | null },
  ): Promise<GitSourceRow> {
    const values = {
      ...(s.ref !== undefined ? { ref: checkGitRef(s.ref) } : {}),
      ...(s.previews !== undefined ? { previews: s.previews } : {}),
      ...(s.syncIntervalSeconds !== undefined ? { sync_interval_seconds: s.syncIntervalSeconds } : {}),
      updated_at: new Date(),
    };
    return this.#db
      .insertInto('git_sources')
      .values({ app_id: app.id, url: null, ref: 'main', previews: false, created_at: new Date(), ...values })
      .onConflict((oc) => oc.column('app_id').doUpdateSet(values))
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async remove(app: Pick<AppRow, 'id'>): Promise<boolean> {
    const r = await this.#db.deleteFrom('git_sources').where('app_id', '=', app.id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Git sources with auto-sync whose interval has passed since their last check. */
  async dueForSync(now: Date): Promise<GitSourceRow[]> {
    return this.#db
      .selectFrom('git_sources')
      .selectAll()
      .where('sync_interval_seconds', 'is not', null)
      .where('url', 'is not', null)
      .where((eb) =>
        eb.or([
          eb('synced_at', 'is', null),
          eb(sql`synced_at + make_interval(secs => sync_interval_seconds)`, '<=', now),
        ]),
      )
      .execute();
  }

  /** Records an auto-sync check (and the commit it saw). */
  async markSynced(appId: string, at: Date, sha: string | null): Promise<void> {
    await this.#db
      .updateTable('git_sources')
      .set({ synced_at: at, synced_sha: sha })
      .where('app_id', '=', appId)
      .execute();
  }

  /** The commit of the app's newest build deployment (whatever its status), or null. */
  async lastBuiltCommit(app: Pick<AppRow, 'id'>): Promise<string | null> {
    const row = await this.#db
      .selectFrom('deployments')
      .select('commit_sha')
      .where('app_id', '=', app.id)
      .where('kind', '=', 'build')
      .orderBy('created_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row?.commit_sha ?? null;
  }

  /** Removes the app's repositories (mirror, submodule mirrors, push repository): the app is being deleted. */
  async removeData(app: Pick<AppRow, 'id'>): Promise<void> {
    for (const dir of [
      this.mirror.path(app.id),
      `${this.mirror.path(app.id).replace(/\.git$/, '')}.modules`,
      this.pushes.path(app.id),
    ])
      await rm(dir, { recursive: true, force: true });
  }

  /** The source's credential, opened (only to hand it to git). */
  credential(row: GitSourceRow): GitCredential | null {
    if (!row.credential || !row.credential_kind) return null;
    const value = this.#d.box.open(row.credential, gitCredentialContext(row.app_id));
    return row.credential_kind === 'ssh-key' ? { kind: 'ssh-key', value } : { kind: 'token', value };
  }

  /**
   * Builds the app from its git source: `ref` (default: the configured ref) is fetched, its newest
   * commit staged and a deployment queued. Fetch failures (no such repository or ref, denied) are 422s
   * before anything is queued.
   */
  async build(
    app: AppRow,
    o: { ref?: string; message?: string; command?: string } = {},
  ): Promise<DeploymentView> {
    const row = await this.get(app);
    if (!row?.url)
      throw new MinipaasError(
        'MINIPAAS_ERR_NO_GIT_SOURCE',
        `"${app.name}" has no git repository URL; set one with minipaas git:set (or deploy it with git push)`,
      );
    const url = row.url;
    const ref = o.ref !== undefined ? checkGitRef(o.ref) : row.ref;
    const credential = this.credential(row);
    return this.#locked(app.id, async () => {
      const commit = await this.mirror.fetch(app.id, url, ref, { credential });
      return this.deployCommit(app, this.mirror.path(app.id), commit, {
        url,
        credential,
        message: o.message ?? commit.message,
        ...(o.command ? { command: o.command } : {}),
      });
    });
  }

  /**
   * Queues a deployment of commit `commit` of repository `repo` (the app's mirror, or its push
   * repository): the tree is exported into the staging directory by the source stage.
   */
  async deployCommit(
    app: AppRow,
    repo: string,
    commit: { sha: string; message: string },
    o: {
      url: string | null;
      credential: GitCredential | null;
      message?: string;
      command?: string;
      objectEnv?: Record<string, string>;
    },
  ): Promise<DeploymentView> {
    const { uploads } = this.#d.config;
    return this.#d.deploys.deploy(
      app,
      {
        kind: 'git',
        command: o.command,
        checkout: async (dir) => {
          await this.mirror.export(repo, commit.sha, dir, uploads, {
            url: o.url,
            appId: app.id,
            credential: o.credential,
            ...(o.objectEnv ? { objectEnv: o.objectEnv } : {}),
          });
          return commit;
        },
      },
      `${commit.sha.slice(0, 7)} ${o.message ?? commit.message}`.slice(0, 500),
    );
  }

  /** The branch whose pushes deploy: the git source's branch, else `main`. */
  async deployBranch(app: Pick<AppRow, 'id'>): Promise<string> {
    const row = await this.get(app);
    return (row && branchOf(row.ref)) || 'main';
  }

  /**
   * The pre-receive hook of a push to the app's repository: a push to the deploy branch deploys the
   * pushed commit (read from the push's quarantine) and streams the deploy log back; a failed deploy
   * refuses the push. Other branches, tags and deletions are stored without deploying.
   */
  pushHandler(app: AppRow): HookHandler {
    return async (updates, objectEnv, say) => {
      const source = await this.get(app);
      const branch = (source && branchOf(source.ref)) || 'main';
      const previews = source?.previews === true && this.previews ? this.previews : null;
      const repo = this.pushes.path(app.id);
      let exit = 0;
      for (const u of updates) {
        const name = u.ref.replace(/^refs\/(heads|tags)\//, '');
        const isBranch = u.ref.startsWith('refs/heads/');
        if (u.new === ZERO_SHA) {
          say(`-----> ${name} deleted`);
          if (previews && isBranch && name !== branch) await previews.destroy(app, name, say);
          continue;
        }
        if (previews && isBranch && u.ref !== `refs/heads/${branch}`) {
          const commit = await this.mirror.commit(repo, u.new, objectEnv);
          if (!(await previews.deployPushed(app, name, commit, objectEnv, say))) exit = 1;
          continue;
        }
        if (u.ref !== `refs/heads/${branch}`) {
          say(`-----> ${name} stored; ${app.name} deploys pushes to ${branch}`);
          continue;
        }
        const commit = await this.mirror.commit(repo, u.new, objectEnv);
        say(`-----> Deploying ${commit.sha.slice(0, 7)} (${commit.message}) to ${app.name}`);
        const started = await this.deployCommit(app, repo, commit, {
          url: null,
          credential: null,
          objectEnv,
        });
        const ok = await this.follow(started.id, say);
        if (!ok) exit = 1;
      }
      return exit;
    };
  }

  /** Streams a deployment's log to `say` until it ends; true when it went live. */
  async follow(id: string, say: (line: string) => void): Promise<boolean> {
    let final: DeploymentView | null = null;
    const ac = new AbortController();
    await this.#d.deploys.follow(
      id,
      {
        log: (line) => say(line),
        status: () => undefined,
        end: (v) => {
          final = v;
        },
      },
      ac.signal,
    );
    const view = final as DeploymentView | null;
    if (view?.status === 'running') return true;
    say(
      `!     Deploy ${view?.status ?? 'ended'}${view?.error ? `: ${view.error}` : ''}; the push is refused`,
    );
    return false;
  }

  async #locked<T>(appId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(appId) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(fn);
    this.#locks.set(appId, run);
    try {
      return await run;
    } finally {
      if (this.#locks.get(appId) === run) this.#locks.delete(appId);
    }
  }
}
