import type { MinipaasConfig } from '@minipaas/core';
import type { Logger } from 'pino';
import type { BackupService } from './backups/backup-service.ts';
import type { BuildWorker } from './deploy/build-worker.ts';
import type { BuildWorkerProcess } from './deploy/build-worker-process.ts';
import type { DeployService } from './deploy/deploy-service.ts';
import type { GitService } from './git/git-service.ts';
import type { PreviewService } from './git/preview-service.ts';
import type { ProjectWebhookService } from './git/project-webhook-service.ts';
import type { WebhookService } from './git/webhook-service.ts';
import type { AccessControl } from './http/access.ts';
import type { RuntimeRegistry } from './runtime/runtime-registry.ts';
import type { AddonService } from './services/addon-service.ts';
import type { AppService } from './services/app-service.ts';
import type { AuditLog } from './services/audit-log.ts';
import type { ProjectService } from './services/project-service.ts';
import type { TeamService } from './services/team-service.ts';
import type { TokenService } from './services/token-service.ts';
import type { UserService } from './services/user-service.ts';
import type { Store } from './store/store.ts';
import type { VolumeService } from './volumes/volume-service.ts';

/** Everything routes need, built once in `createControlPlane` and passed down (no singletons). */
export interface ServerContext {
  config: MinipaasConfig;
  version: string;
  store: Store;
  /** The runtime drivers, by the apps' `runtime`. */
  runtimes: RuntimeRegistry;
  tokens: TokenService;
  /** Who may do what to which target (http/access.ts). */
  access: AccessControl;
  /** Users (access control). */
  users: UserService;
  /** Teams and their members. */
  teams: TeamService;
  /** The append-only audit log. */
  audit: AuditLog;
  projects: ProjectService;
  apps: AppService;
  deploys: DeployService;
  /** Where queued deployments run: a worker in this process, or the separate worker process. */
  buildWorker: { inProcess: BuildWorker | undefined; process: BuildWorkerProcess | undefined };
  addons: AddonService;
  backups: BackupService;
  /** Persistent volumes of projects and their files (docs/volumes.md). */
  volumes: VolumeService;
  /** Apps' git sources and builds from git (docs/git.md). */
  git: GitService;
  /** Push webhooks of apps and their delivery log. */
  webhooks: WebhookService;
  /** Preview environments of apps (docs/git.md). */
  previews: PreviewService;
  /** Project webhooks (seed 001 /api/webhooks/:projectId/:token). */
  projectWebhooks: ProjectWebhookService;
  /**
   * Superuser URL of the platform's Postgres server, used to create app databases (add-ons);
   * undefined when the platform has no Postgres server.
   */
  databaseAdminUrl: string | undefined;
  log: Logger;
}
