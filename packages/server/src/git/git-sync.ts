/**
 * Auto-sync (GitOps, seed 002; docs/git.md): apps whose git source has `sync: {interval}` are polled with
 * `git ls-remote`; a ref that moved to a commit the app has not deployed yet is built like `git:build`.
 * One loop per control plane; an app is checked at most once per its interval, and a failed check or
 * build is logged and retried at the next interval (never in a tight loop).
 */
import { MinipaasError } from '@minipaas/core';
import type { Logger } from 'pino';
import type { AppService } from '../services/app-service.ts';
import { credentialEnv, git } from './git-runner.ts';
import type { GitService, GitSourceRow } from './git-service.ts';
import { isCommitId } from './git-url.ts';

export interface GitSyncOptions {
  git: GitService;
  apps: AppService;
  log: Logger;
  /** How often the loop looks for apps that are due, in ms (default 1000). */
  tickMs?: number;
}

export class GitSync {
  readonly #o: GitSyncOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(o: GitSyncOptions) {
    this.#o = o;
  }

  start(): void {
    this.#stopped = false;
    const loop = () => {
      if (this.#stopped) return;
      this.#running = this.tick()
        .then(() => undefined)
        .catch((err: unknown) => this.#o.log.warn({ err: (err as Error).message }, 'git auto-sync failed'))
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(loop, this.#o.tickMs ?? 1000);
        });
    };
    this.#timer = setTimeout(loop, this.#o.tickMs ?? 1000);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }

  /** Checks every app that is due; returns the apps a build was queued for. */
  async tick(now = new Date()): Promise<string[]> {
    const queued: string[] = [];
    for (const src of await this.#o.git.dueForSync(now)) {
      if (this.#stopped) break;
      await this.#o.git.markSynced(src.app_id, now, src.synced_sha);
      try {
        const sha = await remoteHead(src, this.#o.git);
        if (!sha || sha === src.synced_sha) continue;
        const app = await this.#o.apps.get(src.app_id);
        if (app.status === 'stopped') continue;
        // A commit the app already deployed (or is deploying: a push, a webhook, git:build) is only recorded.
        if ((await this.#o.git.lastBuiltCommit(app)) === sha) {
          await this.#o.git.markSynced(src.app_id, now, sha);
          continue;
        }
        const d = await this.#o.git.build(app, { ref: sha });
        await this.#o.git.markSynced(src.app_id, now, sha);
        this.#o.log.info(
          { app: app.name, commit: sha, deploymentId: d.id },
          'auto-sync: deploying a new commit',
        );
        queued.push(app.name);
      } catch (err) {
        this.#o.log.warn(
          { appId: src.app_id, err: err instanceof MinipaasError ? err.message : (err as Error).message },
          'auto-sync: cannot check or build the git source',
        );
      }
    }
    return queued;
  }
}

/** The commit the source's ref points to now (`git ls-remote`), or null for a pinned commit id. */
async function remoteHead(src: GitSourceRow, svc: GitService): Promise<string | null> {
  if (isCommitId(src.ref) || !src.url) return null;
  const cred = await credentialEnv(src.url, svc.credential(src));
  try {
    const out = await git(['ls-remote', '--', src.url, src.ref], {
      env: cred.env,
      secrets: cred.secrets,
      timeoutMs: 60_000,
    });
    const refs = new Map<string, string>();
    for (const l of out.split('\n')) {
      const [sha, name] = l.split('\t');
      if (sha && name) refs.set(name, sha);
    }
    const ref = src.ref.startsWith('refs/') ? src.ref : null;
    return (
      (ref ? refs.get(ref) : undefined) ??
      refs.get(`refs/heads/${src.ref}`) ??
      refs.get(`refs/tags/${src.ref}^{}`) ??
      refs.get(`refs/tags/${src.ref}`) ??
      null
    );
  } finally {
    await cred.cleanup();
  }
}
