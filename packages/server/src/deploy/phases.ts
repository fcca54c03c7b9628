/**
 * Release phases (Heroku/Dokku): the Procfile `release:` command and app.json `scripts.dokku.predeploy`
 * before the switch (failure aborts), `scripts.dokku.postdeploy` and Heroku `scripts.postdeploy` after it
 * (logged, never fatal), and app.json `env` defaults applied to the app's config.
 */
import { randomBytes } from 'node:crypto';
import { type AppJson, MinipaasError, parseAppJson, type RuntimeSpec } from '@minipaas/core';
import type { RunAs } from '@minipaas/runtime-process';
import type { Kysely, Selectable } from 'kysely';
import { maskLine } from '../secrets/app-secrets.ts';
import type { AppsTable, Database, ReleasesTable } from '../store/schema.ts';
import { runProgram } from './executor.ts';
import type { ImageCommandRunner } from './pipeline-releases.ts';

type AppRow = Selectable<AppsTable>;
type ReleaseRow = Selectable<ReleasesTable>;

/** What a release phase needs. `spec`, `user` and `timeoutMs` are optional for the pipeline's older context. */
export interface PhaseContext {
  app: AppRow;
  release: ReleaseRow;
  spec?: RuntimeSpec;
  user?: RunAs | null;
  say(line: string): Promise<void>;
  signal: AbortSignal;
  timeoutMs?: number;
  /** Runs a command in the release's image (docker runtime releases). */
  runInImage?: ImageCommandRunner;
}

const DEFAULT_TIMEOUT_MS = 15 * 60_000;

/** True for an already-parsed {@link AppJson} (stored by the pipeline as parseAppJson returned it). */
function isNormalised(raw: unknown): raw is AppJson {
  if (raw === null || typeof raw !== 'object') return false;
  const r = raw as Record<string, unknown>;
  const scripts = r.scripts as Record<string, unknown> | undefined;
  return (
    typeof scripts === 'object' &&
    scripts !== null &&
    !('dokku' in scripts) &&
    'env' in r &&
    'formation' in r &&
    'healthchecks' in r
  );
}

function appJsonOf(release: ReleaseRow): AppJson | null {
  const raw = release.app_json;
  if (raw === null || raw === undefined) return null;
  if (isNormalised(raw)) return raw;
  try {
    return parseAppJson(typeof raw === 'string' ? raw : JSON.stringify(raw));
  } catch {
    return null;
  }
}

function releaseDir(release: ReleaseRow): string {
  const a = release.artifact;
  return a && a.kind === 'directory' ? a.path : release.dir;
}

async function runPhase(ctx: PhaseContext, label: string, command: string): Promise<boolean> {
  await ctx.say(`-----> Running ${label}: ${command}`);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: releaseDir(ctx.release),
    ...(ctx.release.env as Record<string, string>),
    ...(ctx.release.config_env ?? {}),
    ...(ctx.spec?.env ?? {}),
  };
  const pending: Promise<void>[] = [];
  const image = ctx.release.artifact?.kind === 'image' ? ctx.release.artifact.ref : null;
  if (image) {
    if (!ctx.runInImage)
      throw new MinipaasError(
        'MINIPAAS_ERR_RELEASE_PHASE_FAILED',
        `no Docker engine to run the ${label} in ${image}`,
      );
    const { PATH: _hostPath, HOME: _hostHome, ...appEnv } = env;
    const r = await ctx.runInImage({
      image,
      command,
      env: appEnv as Record<string, string>,
      onLine: (line) => {
        pending.push(ctx.say(`       ${maskLine(line, ctx.spec?.maskValues)}`));
      },
      signal: ctx.signal,
      timeoutMs: ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
    await Promise.all(pending);
    if (r.code === 0) return true;
    await ctx.say(
      `-----> ${label} ${r.timedOut ? 'timed out' : r.code === null ? 'was stopped' : `exited with code ${r.code}`}`,
    );
    return false;
  }
  const res = await runProgram('/bin/sh', ['-c', command], {
    cwd: releaseDir(ctx.release),
    env,
    onLine: (line) => {
      pending.push(ctx.say(`       ${maskLine(line, ctx.spec?.maskValues)}`));
    },
    timeoutMs: ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    signal: ctx.signal,
    ...(ctx.user ? { uid: ctx.user.uid, gid: ctx.user.gid } : {}),
  });
  await Promise.all(pending);
  if (res.code === 0) return true;
  const why = res.timedOut
    ? 'timed out'
    : res.signal
      ? `killed by ${res.signal}`
      : `exited with code ${res.code}`;
  await ctx.say(`-----> ${label} ${why}`);
  return false;
}

/** Runs the Procfile release command, then app.json `scripts.dokku.predeploy`; failure → MINIPAAS_ERR_RELEASE_PHASE_FAILED. */
export async function runBeforeSwitch(ctx: PhaseContext): Promise<void> {
  const steps: [string, string | undefined | null][] = [
    ['release command', ctx.release.release_command],
    ['predeploy', appJsonOf(ctx.release)?.scripts.predeploy],
  ];
  for (const [label, cmd] of steps) {
    if (!cmd) continue;
    if (!(await runPhase(ctx, label, cmd))) {
      throw new MinipaasError(
        'MINIPAAS_ERR_RELEASE_PHASE_FAILED',
        `The ${label} failed; the previous release keeps serving`,
      );
    }
  }
}

/** Runs app.json `scripts.dokku.postdeploy` and Heroku `scripts.postdeploy`; logs failures, never throws. */
export async function runAfterSwitch(ctx: PhaseContext): Promise<void> {
  const aj = appJsonOf(ctx.release);
  for (const [label, cmd] of [
    ['postdeploy', aj?.scripts.postdeploy],
    ['postdeploy (heroku)', aj?.scripts.herokuPostdeploy],
  ] as const) {
    if (!cmd) continue;
    try {
      await runPhase(ctx, label, cmd);
    } catch (err) {
      await ctx.say(`-----> ${label} failed: ${(err as Error).message}`).catch(() => undefined);
    }
  }
}

/**
 * Applies app.json `env`: `value` defaults for unset vars, `generator: "secret"` generated once and stored,
 * `required` unset → MINIPAAS_ERR_VALIDATION listing the names. Returns the (possibly updated) app row.
 */
export async function prepareConfig(
  db: Kysely<Database>,
  app: AppRow,
  appJson: AppJson | null,
  sealSecret: SecretSealer = (_app, _name, value) => value,
): Promise<AppRow> {
  if (!appJson) return app;
  const env: Record<string, string> = { ...(app.env as Record<string, string>) };
  const missing: string[] = [];
  let changed = false;
  for (const [name, e] of Object.entries(appJson.env)) {
    if (Object.hasOwn(env, name)) continue;
    if (e.generator === 'secret') {
      env[name] = await sealSecret(app.id, name, randomBytes(32).toString('hex'));
      changed = true;
    } else if (e.value !== undefined && e.value !== '') {
      env[name] = e.value;
      changed = true;
    } else if (e.required) missing.push(name);
  }
  if (missing.length > 0) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `app.json requires env vars that are not set: ${missing.join(', ')} (set them with minipaas env:set)`,
      { details: { missing } },
    );
  }
  if (!changed) return app;
  return db
    .updateTable('apps')
    .set({ env: JSON.stringify(env), updated_at: new Date() })
    .where('id', '=', app.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * The phases bound to a database, in the shape the pipeline's `PipelinePhases` expects
 * (`prepareConfig(app, appJson)` where appJson is the stored/parsed app.json or null).
 */
/** Seals a generated secret for app `appId`'s env var `name` (stored as a secret env var). */
export type SecretSealer = (appId: string, name: string, value: string) => string | Promise<string>;

export function createPhases(
  db: Kysely<Database>,
  sealSecret?: SecretSealer,
): {
  prepareConfig(app: AppRow, appJson: unknown): Promise<AppRow>;
  runBeforeSwitch(ctx: PhaseContext): Promise<void>;
  runAfterSwitch(ctx: PhaseContext): Promise<void>;
} {
  return {
    prepareConfig: (app, appJson) =>
      prepareConfig(
        db,
        app,
        appJson === null || appJson === undefined
          ? null
          : parseAppJson(typeof appJson === 'string' ? appJson : JSON.stringify(appJson)),
        sealSecret,
      ),
    runBeforeSwitch,
    runAfterSwitch,
  };
}
