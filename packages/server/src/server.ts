/**
 * Builds the control plane: store, services, runtime driver, Fastify app and reconciler.
 * `createControlPlane` is what `minipaasd` runs and what in-process tests use with `app.inject`.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { homePaths, type MinipaasConfig } from '@minipaas/core';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { BackupScheduler } from './backups/backup-scheduler.ts';
import { BackupService } from './backups/backup-service.ts';
import type { ServerContext } from './context.ts';
import { DeployService } from './deploy/deploy-service.ts';
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
import { backupRoutes } from './routes/backups.ts';
import { deploymentRoutes } from './routes/deployments.ts';
import { healthRoutes } from './routes/health.ts';
import { logRoutes } from './routes/logs.ts';
import { projectRoutes } from './routes/projects.ts';
import { statusRoutes } from './routes/status.ts';
import type { RuntimeDriver } from './runtime/runtime-driver.ts';
import { AddonService } from './services/addon-service.ts';
import { AppService } from './services/app-service.ts';
import { ProjectService } from './services/project-service.ts';
import { TokenService } from './services/token-service.ts';
import { openStore, type Store } from './store/store.ts';

export const VERSION: string = (
  JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

export interface ControlPlaneOptions {
  config: MinipaasConfig;
  /** The runtime the apps run on. */
  driver: RuntimeDriver;
  /** Logger; defaults to pino at `config.logLevel`. */
  logger?: Logger;
  /** PGlite data dir override (`memory://` in tests). Defaults to MINIPAAS_HOME/db. */
  dataDir?: string;
  /** Run the reconciler loop (default true). */
  reconcile?: boolean;
  /** Take the scheduled platform backups (config `backups.*`); default: like `reconcile`. */
  scheduleBackups?: boolean;
}

export interface ControlPlane {
  app: FastifyInstance;
  ctx: ServerContext;
  /** The admin token when it was created by this start, else null. */
  createdAdminToken: string | null;
  /** Every route the API serves, and whether it is public (tests prove each one is authenticated). */
  routes: ReadonlyArray<{ method: string; url: string; public: boolean }>;
  listen(): Promise<string>;
  close(): Promise<void>;
}

export async function createControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const { config, driver } = opts;
  const log = opts.logger ?? pino({ level: config.logLevel, base: { component: 'minipaasd' } });
  const paths = homePaths(config.home);
  const store: Store = await openStore({
    databaseUrl: config.databaseUrl,
    dataDir: opts.dataDir ?? paths.db,
  });
  const tokens = new TokenService(store.db);
  const createdAdminToken = await tokens.ensureAdminToken(paths.adminToken);
  const projects = new ProjectService(store.db);
  const apps = new AppService({ db: store.db, config, driver, projects, log });
  const deploys = new DeployService({ db: store.db, config, driver, apps, log });
  const interrupted = await deploys.recoverInterrupted();
  if (interrupted > 0) log.warn({ interrupted }, 'marked deployments interrupted by a restart as failed');
  // The embedded-server work sets this to the embedded superuser URL; an external server's URL for now.
  const databaseAdminUrl = config.databaseUrl;
  const addons = new AddonService({ db: store.db, apps, log, adminUrl: databaseAdminUrl });
  apps.beforeDelete.push((app) => addons.destroyAll(app));
  // The platform database's URL (the embedded server's, once it replaces PGlite).
  const backups = new BackupService({
    dir: paths.backups,
    platformUrl: config.databaseUrl,
    apps,
    addons,
    log: log.child({ component: 'backups' }),
  });
  const ctx: ServerContext = {
    config,
    version: VERSION,
    store,
    driver,
    tokens,
    projects,
    apps,
    deploys,
    addons,
    backups,
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
  const routes: Array<{ method: string; url: string; public: boolean }> = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat())
      routes.push({ method, url: r.url, public: r.config?.public === true });
  });
  registerErrorHandling(app);
  registerJsonParser(app, config.limits.jsonBodyBytes);
  // Authentication is decided by the matched route's config (see http/auth.ts), for every route.
  registerAuth(app, tokens);
  healthRoutes(app, ctx);
  statusRoutes(app, ctx);
  projectRoutes(app, ctx);
  appRoutes(app, ctx);
  deploymentRoutes(app, ctx);
  logRoutes(app, ctx);
  addonRoutes(app, ctx);
  backupRoutes(app, ctx);

  const reconciler = new Reconciler({ apps, driver, log: log.child({ component: 'reconciler' }) });
  if (opts.reconcile !== false) reconciler.start();
  const backupScheduler = new BackupScheduler({
    backups,
    schedule: config.databaseUrl ? config.backups.schedule : 'off',
    keep: config.backups.keep,
    log: log.child({ component: 'backups' }),
  });
  if (opts.scheduleBackups ?? opts.reconcile !== false) backupScheduler.start();

  return {
    app,
    ctx,
    createdAdminToken,
    routes,
    async listen() {
      return app.listen({ host: config.api.host, port: config.api.port });
    },
    async close() {
      await reconciler.stop();
      await backupScheduler.stop();
      await app.close();
      await deploys.close();
      await store.close();
    },
  };
}
