/**
 * Builds the control plane: store, services, runtime driver, Fastify app and reconciler.
 * `createControlPlane` is what `minipaasd` runs and what in-process tests use with `app.inject`.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RuntimeDriver } from '@minipaas/core';
import { homePaths, type MinipaasConfig, MinipaasError } from '@minipaas/core';
import { embeddedPostgres } from '@minipaas/postgres';
import type { DockerBuilder } from '@minipaas/runtime-docker';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { createLogin } from './auth/login.ts';
import { hashPassword, verifyPassword } from './auth/password-hash.ts';
import { DbUserDirectory, randomPassword } from './auth/user-directory.ts';
import { BackupScheduler } from './backups/backup-scheduler.ts';
import { BackupService } from './backups/backup-service.ts';
import type { ServerContext } from './context.ts';
import { installBuildQueue } from './deploy/build-queue.ts';
import type { BuildWorker } from './deploy/build-worker.ts';
import { BuildWorkerProcess } from './deploy/build-worker-process.ts';
import { DeployService } from './deploy/deploy-service.ts';
import { DeploymentFeed, listenForDeployments } from './deploy/deployment-feed.ts';
import { DEPLOYMENT_CHANNEL, DeploymentStore } from './deploy/deployment-store.ts';
import { kyselyExecutor } from './deploy/kysely-executor.ts';
import { GitService } from './git/git-service.ts';
import { GitSync } from './git/git-sync.ts';
import { PreviewService } from './git/preview-service.ts';
import { ProjectWebhookService } from './git/project-webhook-service.ts';
import { WebhookService } from './git/webhook-service.ts';
import { AccessControl, registerAccessControl } from './http/access.ts';
import { registerAuditTrail } from './http/audit-trail.ts';
import { registerAuth } from './http/auth.ts';
import {
  clientErrorHandler,
  frameworkErrors,
  registerErrorHandling,
  registerJsonParser,
} from './http/error-handler.ts';
import { Reconciler } from './reconciler.ts';
import { addonRoutes } from './routes/addons.ts';
import { appRoutes } from './routes/apps.ts';
import { auditRoutes } from './routes/audit.ts';
import { backupRoutes } from './routes/backups.ts';
import { buildRoutes } from './routes/builds.ts';
import { deploymentRoutes } from './routes/deployments.ts';
import { gitHttpRoutes, gitRoutes } from './routes/git.ts';
import { healthRoutes } from './routes/health.ts';
import { logRoutes } from './routes/logs.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { nodeRoutes } from './routes/nodes.ts';
import { projectRoutes } from './routes/projects.ts';
import { releaseRoutes } from './routes/releases.ts';
import { secretRoutes } from './routes/secrets.ts';
import { statusRoutes } from './routes/status.ts';
import { teamRoutes } from './routes/teams.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { userRoutes } from './routes/users.ts';
import { volumeRoutes } from './routes/volumes.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { RuntimeRegistry } from './runtime/runtime-registry.ts';
import { secretBoxFor } from './secrets/app-secrets.ts';
import { AddonService } from './services/addon-service.ts';
import { AppService } from './services/app-service.ts';
import { AuditLog, schedulePruning } from './services/audit-log.ts';
import { DedicatedPostgres } from './services/dedicated-postgres.ts';
import { ProjectService } from './services/project-service.ts';
import { TeamService } from './services/team-service.ts';
import { TokenService } from './services/token-service.ts';
import { UserService } from './services/user-service.ts';
import { upgradeFromPglite } from './store/pglite-upgrade.ts';
import { openStore, type Store } from './store/store.ts';
import { installSpecHooks } from './volumes/spec-hooks.ts';
import { VolumeService } from './volumes/volume-service.ts';

export const VERSION: string = (
  JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

export interface ControlPlaneOptions {
  config: MinipaasConfig;
  /** The runtime drivers apps run on, one per `runtime` name (`process` first). */
  drivers: RuntimeDriver[];
  /** Logger; defaults to pino at `config.logLevel`. */
  logger?: Logger;
  /**
   * Runs the store on PGlite in this directory (`memory://` in tests). Default: the PostgreSQL server at
   * `config.databaseUrl`, else the embedded server of MINIPAAS_HOME (started by `minipaas up`).
   */
  dataDir?: string;
  /** Run the reconciler loop (default true). */
  reconcile?: boolean;
  /** Take the scheduled platform backups (config `backups.*`); default: like `reconcile`. */
  scheduleBackups?: boolean;
  /**
   * Where builds run: `in-process` (default; what tests use, and always on PGlite), `process` (a separate
   * `minipaas-build-worker` child with its own database pool, restarted when it dies: what minipaasd runs),
   * or `none` (nothing runs queued deployments).
   */
  buildWorker?: 'in-process' | 'process' | 'none';
  /** Image builder of docker-runtime apps for an in-process build worker (docs/docker.md). */
  dockerBuilder?: DockerBuilder;
}

export interface ControlPlane {
  app: FastifyInstance;
  ctx: ServerContext;
  /** The admin token when it was created by this start, else null. */
  createdAdminToken: string | null;
  /** Every route the API serves, and whether it is public (tests prove each one is authenticated). */
  routes: ReadonlyArray<{ method: string; url: string; public: boolean; action?: string | undefined }>;
  listen(): Promise<string>;
  close(): Promise<void>;
}

export async function createControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const { config } = opts;
  const runtimes = new RuntimeRegistry(opts.drivers);
  const log = opts.logger ?? pino({ level: config.logLevel, base: { component: 'minipaasd' } });
  const paths = homePaths(config.home);
  // The platform database: PGlite when a test asks for it, else DATABASE_URL, else the embedded server.
  const embedded =
    opts.dataDir || config.databaseUrl
      ? undefined
      : embeddedPostgres({ home: config.home, config: config.postgres });
  const embeddedFailure = (err: unknown): never => {
    throw new MinipaasError(
      'MINIPAAS_ERR_INTERNAL',
      `cannot use the embedded PostgreSQL server (socket in ${embedded?.socketDir}): ${(err as Error).message}; "minipaas up" starts it (see ${embedded?.logFile})`,
    );
  };
  let databaseUrl: string | undefined;
  try {
    databaseUrl = opts.dataDir ? undefined : (config.databaseUrl ?? embedded?.superuserUrl());
  } catch (err) {
    embeddedFailure(err);
  }
  const store: Store = await openStore({
    ...(databaseUrl
      ? { databaseUrl, connectRetryMs: embedded ? 30_000 : 0 } // the supervisor may be restarting it
      : { dataDir: opts.dataDir }),
    onConnectionError: (err) =>
      log.warn({ err: err.message }, 'a database connection failed; the pool replaces it'),
  }).catch((err: unknown) => (embedded ? embeddedFailure(err) : Promise.reject(err)));
  if (embedded && databaseUrl) {
    try {
      await upgradeFromPglite({ pgliteDir: paths.db, databaseUrl, log });
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  const tokens = new TokenService(store.db);
  const access = new AccessControl(store.db);
  const audit = new AuditLog(store.db);
  const createdAdminToken = await tokens.ensureAdminToken(paths.adminToken);
  const projects = new ProjectService(store.db);
  const apps = new AppService({ db: store.db, config, runtimes, projects, log });
  // The durable build queue (@minipaas/sql in the platform database) and the worker that empties it.
  await installBuildQueue(kyselyExecutor(store.db));
  const feed = new DeploymentFeed();
  const deployments = new DeploymentStore(store.db, feed);
  const workerMode =
    opts.buildWorker === 'process' && !databaseUrl ? 'in-process' : (opts.buildWorker ?? 'in-process');
  let worker: BuildWorker | undefined;
  let workerProcess: BuildWorkerProcess | undefined;
  let notifications: { close(): Promise<void> } | undefined;
  if (workerMode === 'in-process') {
    // Loaded only here: minipaasd runs builds in a worker process and never holds the pipeline's modules.
    const { createBuildWorker } = await import('./deploy/pipeline.ts');
    const { pipelineExtensions } = await import('./deploy/pipeline-extensions.ts');
    worker = createBuildWorker({
      db: store.db,
      queueDb: kyselyExecutor(store.db),
      config,
      apps,
      runtimes,
      deployments,
      log: log.child({ component: 'build-worker' }),
      ...pipelineExtensions(store.db, config, apps),
      ...(opts.dockerBuilder ? { dockerBuilder: opts.dockerBuilder } : {}),
    });
    await worker.start();
  } else if (workerMode === 'process' && databaseUrl) {
    // Live logs of deployments the worker runs arrive as NOTIFYs.
    notifications = listenForDeployments({ databaseUrl, channel: DEPLOYMENT_CHANNEL, feed, log });
    workerProcess = new BuildWorkerProcess({
      config,
      databaseUrl,
      log: log.child({ component: 'build-worker' }),
      hasWork: async () =>
        Boolean(
          await store.db
            .selectFrom('deployments')
            .select('id')
            .where('status', 'in', ['queued', 'building', 'deploying'])
            .limit(1)
            .executeTakeFirst(),
        ),
    });
    // Started now, so the first deploy does not wait for it (it exits after a while idle, and is started
    // again with the next deployment).
    workerProcess.ensureRunning();
  }
  const deploys = new DeployService({
    db: store.db,
    config,
    apps,
    deployments,
    feed,
    log,
    onQueued: () => {
      worker?.wake();
      workerProcess?.ensureRunning();
    },
  });
  // Superuser URL of the platform's server (embedded or DATABASE_URL); none on PGlite.
  const databaseAdminUrl = databaseUrl;
  // Dedicated add-ons' servers: minipaasd starts them detached and its watcher adopts/restarts them.
  const dedicated: DedicatedPostgres = new DedicatedPostgres({
    home: config.home,
    postgres: config.postgres,
    list: () => addons.dedicatedServers(),
    log: log.child({ component: 'dedicated-postgres' }),
  });
  const addons = new AddonService({ db: store.db, apps, log, adminUrl: databaseAdminUrl, dedicated });
  dedicated.start();
  // A deleted app's builds stop first (they run as its user, which goes with it).
  apps.beforeDelete.push((app) => deploys.cancelAll(app));
  apps.beforeDelete.push((app) => addons.destroyAll(app));
  // The platform database's URL (embedded server or DATABASE_URL).
  const backups = new BackupService({
    dir: paths.backups,
    platformUrl: databaseUrl,
    apps,
    addons,
    log: log.child({ component: 'backups' }),
  });
  // Volumes and resource limits complete every runtime spec (issue 9).
  const volumes = new VolumeService({
    db: store.db,
    config,
    projects,
    apps,
    log: log.child({ component: 'volumes' }),
  });
  installSpecHooks(apps, config, volumes);
  apps.beforeDelete.push((app) => volumes.deleteForApp(app));
  // Before any request: a volume being created has its directory before its row.
  await volumes
    .sweepOrphans()
    .catch((err: unknown) =>
      log.warn({ err: (err as Error).message }, 'cannot remove the data of deleted volumes'),
    );
  // Deploy from git (issue 10, docs/git.md): sources, credentials sealed by the SecretBox.
  const git = new GitService({
    db: store.db,
    config,
    deploys,
    box: secretBoxFor(config),
    log: log.child({ component: 'git' }),
  });
  apps.beforeDelete.push((app) => git.removeData(app));
  // Auto-sync of git sources with `sync: {interval}` (runs with the reconciler).
  const gitSync = new GitSync({ git, apps, log: log.child({ component: 'git-sync' }) });
  // Preview environments of apps with previews on (pushes to other branches, pull requests).
  const previews = new PreviewService({ db: store.db, apps, git, log: log.child({ component: 'previews' }) });
  git.previews = previews;
  apps.beforeDelete.unshift((app) => previews.destroyAll(app));
  const webhooks = new WebhookService({
    db: store.db,
    box: secretBoxFor(config),
    git,
    previews,
    log: log.child({ component: 'webhooks' }),
  });
  const projectWebhooks = new ProjectWebhookService({
    db: store.db,
    box: secretBoxFor(config),
    git,
    apps,
    log: log.child({ component: 'webhooks' }),
  });
  const ctx: ServerContext = {
    config,
    version: VERSION,
    store,
    runtimes,
    tokens,
    access,
    users: new UserService(store.db),
    teams: new TeamService(store.db),
    audit,
    projects,
    apps,
    deploys,
    buildWorker: { inProcess: worker, process: workerProcess },
    addons,
    backups,
    volumes,
    git,
    webhooks,
    previews,
    projectWebhooks,
    databaseAdminUrl,
    log,
  };

  const app: FastifyInstance = Fastify({
    loggerInstance: log.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: config.limits.jsonBodyBytes,
    frameworkErrors,
    clientErrorHandler,
    return503OnClosing: true,
    forceCloseConnections: true,
  });
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
  });
  const routes: Array<{ method: string; url: string; public: boolean; action?: string | undefined }> = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat())
      routes.push({ method, url: r.url, public: r.config?.public === true, action: r.config?.action });
  });
  registerErrorHandling(app);
  registerJsonParser(app, config.limits.jsonBodyBytes);
  // Browser login (issue 11): the session hook runs before authentication; the landing page and /auth/*.
  const login = createLogin({
    db: store.db,
    config,
    users: new DbUserDirectory({
      db: store.db,
      checkPassword: verifyPassword,
      dummyHash: await hashPassword(randomPassword()),
      appUrl: (name) => apps.urls(name).url,
    }),
    log: log.child({ component: 'login' }),
    // Every login, failed or locked login and logout goes to the audit log too.
    onEvent: (e, req) =>
      audit.record({
        action: e.outcome === 'logout' ? 'logout' : 'login',
        outcome:
          e.outcome === 'success' || e.outcome === 'logout'
            ? 'success'
            : e.outcome === 'locked'
              ? 'denied'
              : 'failure',
        actorUserId: e.userId ?? null,
        actor: e.login ?? null,
        sessionId: e.sessionId ?? null,
        method: req.method,
        path: req.url.split('?')[0],
        requestId: req.id,
        ip: e.ip,
        detail: { via: e.method, ...(e.reason ? { reason: e.reason } : {}) },
      }),
  });
  login.registerSessionHook(app);
  // Authentication is decided by the matched route's config (see http/auth.ts), for every route.
  registerAuth(app, tokens, access);
  // Authorization: every route's declared action, against the caller's role (http/access.ts).
  registerAccessControl(app, access);
  // One audit entry per mutating request, written before the answer leaves (services/audit-log.ts).
  registerAuditTrail(app, audit, (err, req) =>
    req.log.error({ err: err.message }, 'cannot append to the audit log'),
  );
  healthRoutes(app, ctx);
  statusRoutes(app, ctx);
  projectRoutes(app, ctx);
  appRoutes(app, ctx);
  deploymentRoutes(app, ctx);
  buildRoutes(app, ctx);
  gitRoutes(app, ctx);
  gitHttpRoutes(app, ctx);
  webhookRoutes(app, ctx);
  releaseRoutes(app, ctx);
  logRoutes(app, ctx);
  addonRoutes(app, ctx);
  backupRoutes(app, ctx);
  volumeRoutes(app, ctx, volumes);
  metricsRoutes(app, ctx);
  nodeRoutes(app, ctx);
  secretRoutes(app, ctx);
  userRoutes(app, ctx);
  teamRoutes(app, ctx);
  tokenRoutes(app, ctx);
  auditRoutes(app, ctx);
  login.registerRoutes(app);

  const reconciler = new Reconciler({ apps, runtimes, log: log.child({ component: 'reconciler' }) });
  if (opts.reconcile !== false) reconciler.start();
  if (opts.reconcile !== false) gitSync.start();
  const backupScheduler = new BackupScheduler({
    backups,
    schedule: databaseUrl ? config.backups.schedule : 'off',
    keep: config.backups.keep,
    log: log.child({ component: 'backups' }),
  });
  if (opts.scheduleBackups ?? opts.reconcile !== false) backupScheduler.start();
  // Audit entries past audit.retentionDays go (the only deletion the audit table lets through).
  const stopPruning =
    opts.reconcile !== false
      ? schedulePruning(audit, config.audit.retentionDays, (err) =>
          log.error({ err: err.message }, 'cannot prune the audit log'),
        )
      : () => {};

  return {
    app,
    ctx,
    createdAdminToken,
    routes,
    async listen() {
      return app.listen({ host: config.api.host, port: config.api.port });
    },
    async close() {
      stopPruning();
      await reconciler.stop();
      await gitSync.stop();
      await backupScheduler.stop();
      await dedicated.close();
      await deploys.close();
      await app.close();
      await worker?.stop('abort');
      await workerProcess?.stop();
      await notifications?.close();
      await store.close();
    },
  };
}
