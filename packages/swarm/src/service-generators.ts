/**
 * `code expose`, `code worker`, `code job`, `code cron`: rewrite services of the environment's main
 * compose file in place (comments and order kept) into routed web services, background workers,
 * one-off jobs and scheduled tasks.
 */
import { MinipaasError } from '@minipaas/core';
import { Cron } from 'croner';
import { isMap, isScalar } from 'yaml';
import { ComposeFile } from './compose-file.ts';
import type { SwarmEnvironment } from './swarm-environment.ts';

/** Labels the toolkit reads (on `deploy.labels`, so they land on the Swarm service). */
export const LABELS = {
  role: 'minipaas.role',
  domain: 'minipaas.http.domain',
  port: 'minipaas.http.port',
  path: 'minipaas.http.path',
  cronEnable: 'swarm.cronjob.enable',
  cronSchedule: 'swarm.cronjob.schedule',
  cronSkipRunning: 'swarm.cronjob.skip-running',
  cronReplicas: 'swarm.cronjob.replicas',
} as const;

/** Options of {@link exposeService}. */
export interface ExposeOptions {
  /** Public host name Caddy routes to the service. */
  domain: string;
  /** Port the service listens on inside its containers (default 80). */
  port?: number;
  /** Only requests under this path prefix (default: all). */
  path?: string;
}

/** Options of {@link cronService}. */
export interface CronOptions {
  /** Cron expression: 5 fields, or 6 with seconds first (what swarm-cronjob accepts). */
  schedule: string;
  /** Do not start a run while the previous one is still running (default false). */
  skipRunning?: boolean;
  /** Tasks per run (default 1). */
  replicas?: number;
}

const DOMAIN_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

function open(env: SwarmEnvironment, services: readonly string[]): ComposeFile {
  if (services.length === 0) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'name at least one service');
  const f = ComposeFile.load(env.mainCompose);
  for (const s of services)
    if (!f.hasService(s))
      throw new MinipaasError(
        'MINIPAAS_ERR_NOT_FOUND',
        `service ${s} is not in ${env.mainCompose} (services: ${f.serviceNames().join(', ') || 'none'})`,
      );
  return f;
}

function setLabel(f: ComposeFile, svc: string, key: string, value: string): void {
  f.labels(['services', svc, 'deploy', 'labels']).set(key, value);
}

function dropLabels(f: ComposeFile, svc: string, keys: readonly string[]): void {
  const node = f.doc.getIn(['services', svc, 'deploy', 'labels'], true);
  if (!node) return;
  const m = f.labels(['services', svc, 'deploy', 'labels']);
  for (const k of keys) m.delete(k);
}

/** Start-first, health-gated updates that roll back by themselves; user values win. */
function rollingDefaults(f: ComposeFile, svc: string): void {
  const d = ['services', svc, 'deploy'];
  f.setDefault([...d, 'update_config'], {
    parallelism: 1,
    order: 'start-first',
    failure_action: 'rollback',
    monitor: '10s',
    delay: '1s',
  });
  f.setDefault([...d, 'rollback_config'], { parallelism: 0, order: 'start-first' });
  f.setDefault([...d, 'restart_policy'], { condition: 'any', delay: '2s' });
}

function dropPorts(f: ComposeFile, svc: string): void {
  f.delete(['services', svc, 'ports']);
}

/** Adds Caddy routing labels and a host-mode port to a service. */
export function exposeService(env: SwarmEnvironment, service: string, opts: ExposeOptions): string {
  const domain = opts.domain.trim().toLowerCase();
  if (!DOMAIN_RE.test(domain) || domain.length > 253)
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `bad domain ${JSON.stringify(opts.domain)}`);
  const port = opts.port ?? 80;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `bad port ${opts.port}: use 1-65535`);
  if (opts.path !== undefined && !/^\/[\w\-./~%]*$/.test(opts.path))
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `bad path ${JSON.stringify(opts.path)}: it starts with /`,
    );
  const f = open(env, [service]);
  const d = ['services', service, 'deploy'];
  if (f.get([...d, 'mode']) === 'replicated-job' || f.get([...d, 'mode']) === 'global-job')
    f.delete([...d, 'mode']);
  setLabel(f, service, LABELS.role, 'web');
  setLabel(f, service, LABELS.domain, domain);
  setLabel(f, service, LABELS.port, String(port));
  if (opts.path) setLabel(f, service, LABELS.path, opts.path);
  else dropLabels(f, service, [LABELS.path]);
  dropLabels(f, service, [
    LABELS.cronEnable,
    LABELS.cronSchedule,
    LABELS.cronSkipRunning,
    LABELS.cronReplicas,
  ]);
  rollingDefaults(f, service);
  // The routing mesh is bypassed: each task publishes its port on its node (host mode) under a port
  // Docker picks, and Caddy is told every task's address. Two tasks can then share a node during a
  // start-first update.
  const ports = f.seq(['services', service, 'ports']);
  const has = ports.items.some((it) => {
    if (isMap(it)) return Number((it.get('target') as unknown) ?? 0) === port;
    const s = String(isScalar(it) ? it.value : it);
    return s.split(':').pop()?.split('/')[0] === String(port);
  });
  if (!has) ports.add(f.doc.createNode({ target: port, mode: 'host', protocol: 'tcp' }));
  f.save();
  return f.path;
}

/** Turns services into long-running background workers without ports or routes. */
export function workerServices(env: SwarmEnvironment, services: readonly string[]): string {
  const f = open(env, services);
  for (const s of services) {
    const d = ['services', s, 'deploy'];
    const mode = f.get([...d, 'mode']);
    if (mode === 'replicated-job' || mode === 'global-job') f.delete([...d, 'mode']);
    if (f.get([...d, 'replicas']) === 0) f.delete([...d, 'replicas']);
    dropPorts(f, s);
    dropLabels(f, s, [
      LABELS.domain,
      LABELS.port,
      LABELS.path,
      LABELS.cronEnable,
      LABELS.cronSchedule,
      LABELS.cronSkipRunning,
      LABELS.cronReplicas,
    ]);
    setLabel(f, s, LABELS.role, 'worker');
    if ((f.get([...d, 'restart_policy', 'condition']) as string | undefined) === 'none')
      f.delete([...d, 'restart_policy']);
    rollingDefaults(f, s);
  }
  f.save();
  return f.path;
}

/** Turns services into one-off jobs: run to completion once per deploy, retried on failure. */
export function jobServices(env: SwarmEnvironment, services: readonly string[]): string {
  const f = open(env, services);
  for (const s of services) {
    const d = ['services', s, 'deploy'];
    dropPorts(f, s);
    dropLabels(f, s, [
      LABELS.domain,
      LABELS.port,
      LABELS.path,
      LABELS.cronEnable,
      LABELS.cronSchedule,
      LABELS.cronSkipRunning,
      LABELS.cronReplicas,
    ]);
    setLabel(f, s, LABELS.role, 'job');
    f.set([...d, 'mode'], 'replicated-job');
    if (f.get([...d, 'replicas']) === 0) f.delete([...d, 'replicas']);
    // Jobs have no rolling updates.
    f.delete([...d, 'update_config']);
    f.delete([...d, 'rollback_config']);
    f.set([...d, 'restart_policy'], { condition: 'on-failure', max_attempts: 3 });
  }
  f.save();
  return f.path;
}

/** Throws a validation error unless `schedule` is a cron expression croner (and swarm-cronjob) accept. */
export function validateSchedule(schedule: string): void {
  const fields = schedule.trim().split(/\s+/);
  if (fields.length < 5 || fields.length > 6)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `bad schedule ${JSON.stringify(schedule)}: give 5 fields (minute hour day month weekday) or 6 with seconds first`,
    );
  try {
    new Cron(schedule, { paused: true, mode: '5-or-6-parts' }).stop();
  } catch (err) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `bad schedule ${JSON.stringify(schedule)}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** Schedules a service with swarm-cronjob labels: 0 replicas between runs, no restarts. */
export function cronService(env: SwarmEnvironment, service: string, opts: CronOptions): string {
  validateSchedule(opts.schedule);
  const replicas = opts.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `bad replicas ${opts.replicas}: use a whole number >= 1`,
    );
  const f = open(env, [service]);
  const d = ['services', service, 'deploy'];
  dropPorts(f, service);
  dropLabels(f, service, [LABELS.domain, LABELS.port, LABELS.path]);
  const mode = f.get([...d, 'mode']);
  if (mode === 'replicated-job' || mode === 'global-job') f.delete([...d, 'mode']);
  f.set([...d, 'replicas'], 0);
  f.set([...d, 'restart_policy'], { condition: 'none' });
  f.delete([...d, 'update_config']);
  f.delete([...d, 'rollback_config']);
  setLabel(f, service, LABELS.role, 'cron');
  setLabel(f, service, LABELS.cronEnable, 'true');
  setLabel(f, service, LABELS.cronSchedule, opts.schedule.trim());
  setLabel(f, service, LABELS.cronSkipRunning, String(opts.skipRunning ?? false));
  setLabel(f, service, LABELS.cronReplicas, String(replicas));
  f.save();
  return f.path;
}
