import {
  type AppJson,
  type AppUser,
  type HttpCheck,
  isProcessType,
  type ProcessSpec,
  type RuntimeSpec,
} from '@minipaas/core';
import type { Selectable } from 'kysely';
import type { AppsTable, ReleasesTable } from '../store/schema.ts';

/** Process types that are not long-running and are never started as instances. */
const ONE_OFF_TYPES = new Set(['release']);

/**
 * Instance count a process type gets when the user has not scaled it, as on Heroku and Dokku: the
 * release's app.json `formation` quantity, else 1 for `web` and 0 for every other type (`scale
 * worker=1` starts them).
 */
export function defaultInstances(type: string, appJson?: AppJson | null): number {
  const formation = appJson?.formation;
  const entry = formation && Object.hasOwn(formation, type) ? formation[type] : undefined;
  if (entry && typeof entry.quantity === 'number') return entry.quantity;
  return type === 'web' ? 1 : 0;
}

/** `map[key]` only when it is the map's own property (never an inherited `constructor` & co). */
function own<T>(map: Readonly<Record<string, T>> | null | undefined, key: string): T | undefined {
  return map && Object.hasOwn(map, key) ? map[key] : undefined;
}

/** Effective process table: release commands, overridden by the app's commands and counts. */
export function effectiveProcesses(
  app: Pick<Selectable<AppsTable>, 'processes'>,
  release: (Pick<Selectable<ReleasesTable>, 'commands'> & { app_json?: unknown }) | null,
): Record<string, ProcessSpec> {
  const appJson = (release?.app_json ?? null) as AppJson | null;
  const out: Record<string, ProcessSpec> = Object.create(null);
  const types = new Set([...Object.keys(release?.commands ?? {}), ...Object.keys(app.processes)]);
  for (const type of types) {
    if (ONE_OFF_TYPES.has(type) || !isProcessType(type)) continue;
    const override = own(app.processes, type);
    const command = override?.command ?? own(release?.commands, type);
    if (typeof command !== 'string' || !command) continue;
    out[type] = { command, instances: override?.instances ?? defaultInstances(type, appJson) };
  }
  return { ...out };
}

/** Env var names whose values are treated as secrets and masked in captured app logs. */
const SECRET_NAME_RE =
  /(SECRET|TOKEN|PASSW(OR)?D|PASSPHRASE|PRIVATE|CREDENTIAL|API_?KEY|ACCESS_?KEY|AUTH|_KEY$|^KEY$|_DSN$)/i;
/** A URL with a password in it (`scheme://user:password@host`), whatever its variable's name. */
const URL_WITH_PASSWORD_RE = /^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:[^/\s@]+@/i;
/** Shorter values are not masked: masking "1" or "true" would garble every log line. */
const MIN_MASKED_LENGTH = 6;

/**
 * Values of the env vars that look like secrets: by name (`*_TOKEN`, `*_SECRET`, `*PASSWORD*`,
 * `*_KEY`, ...), and URLs that carry a password (masked whole). Until secrets are a kind of
 * config of their own, this is how captured app logs keep them out.
 */
export function secretValues(env: Readonly<Record<string, string>>): string[] {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(env)) {
    if (v.length >= MIN_MASKED_LENGTH && (SECRET_NAME_RE.test(k) || URL_WITH_PASSWORD_RE.test(v))) out.add(v);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** The desired state the runtime gets for an app at a release, run as `user` when it has its own. */
export function buildSpec(
  app: Selectable<AppsTable>,
  release: Selectable<ReleasesTable>,
  user?: AppUser,
): RuntimeSpec {
  const spec: RuntimeSpec = {
    name: app.name,
    release: `v${release.version}`,
    artifact: release.artifact ?? { kind: 'directory', path: release.dir },
    // A rollback release being deployed runs with the env vars of the release it rolls back to (Heroku
    // restores them too; they become the app's once it is live). Once it is the current release, the app's
    // env is what later env:set and secret changes update.
    env: {
      ...release.env,
      ...(release.rollback_of != null && app.current_release !== release.version
        ? (release.config_env ?? {})
        : app.env),
    },
    processes: effectiveProcesses(app, release),
  };
  const masked = secretValues(spec.env);
  if (masked.length > 0) spec.maskValues = masked;
  if (app.healthcheck_path) spec.healthcheck = { path: app.healthcheck_path };
  const checks = appJsonChecks(release.app_json as AppJson | null);
  if (checks.length > 0) spec.healthcheck = { ...spec.healthcheck, checks };
  const cron = (release.app_json as AppJson | null)?.cron ?? [];
  if (cron.length > 0) spec.cron = cron.map((c) => ({ command: c.command, schedule: c.schedule }));
  if (user) spec.user = user;
  return spec;
}

const seconds = (s: number | undefined) => (typeof s === 'number' ? Math.round(s * 1000) : undefined);

/** app.json `healthchecks.web[]` (Dokku format, seconds) as the runtime's checks (milliseconds). */
export function appJsonChecks(appJson: AppJson | null | undefined): HttpCheck[] {
  const web = appJson?.healthchecks?.web;
  if (!Array.isArray(web)) return [];
  return web.map((c) => {
    const check: HttpCheck = { type: c.type, path: c.path };
    if (c.content !== undefined) check.content = c.content;
    if (c.attempts !== undefined) check.attempts = c.attempts;
    const timeoutMs = seconds(c.timeout);
    const waitMs = seconds(c.wait);
    const initialDelayMs = seconds(c.initialDelay);
    if (timeoutMs !== undefined) check.timeoutMs = timeoutMs;
    if (waitMs !== undefined) check.waitMs = waitMs;
    if (initialDelayMs !== undefined) check.initialDelayMs = initialDelayMs;
    return check;
  });
}
