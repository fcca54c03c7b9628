/**
 * The configuration part of a source's `minipaas.yaml` (processes and formation, config vars, health
 * check, resources), applied to the app before each release is recorded, so the release snapshot carries
 * it and the repository is the source of truth (docs/git.md). Written straight to the app's row: the
 * deployment itself then rolls it out (nothing is restarted twice).
 */
import { MinipaasError } from '@minipaas/core';
import { APP_MANIFEST, type AppManifest } from '@minipaas/core/app-manifest';
import type { Kysely } from 'kysely';
import { isSecretReference } from '../secrets/app-secrets.ts';
import type { AppRow } from '../services/app-service.ts';
import type { Database, ProcessOverride } from '../store/schema.ts';

/** Names that must never become keys of a plain object. */
const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Applies the manifest's `processes`, `env`, `healthcheck` and `resources` to `app` (each only when the
 * manifest has it) and returns the updated row; `say` notes what changed in the deploy log.
 */
export async function applyManifestConfig(
  db: Kysely<Database>,
  app: AppRow,
  manifest: AppManifest | null,
  say: (line: string) => Promise<void>,
): Promise<AppRow> {
  if (!manifest) return app;
  const set: {
    processes?: string;
    env?: string;
    healthcheck_path?: string;
    cpu_millicores?: number;
    memory_mb?: number;
  } = {};
  const notes: string[] = [];
  if (manifest.processes) {
    const processes: Record<string, ProcessOverride> = {};
    for (const [type, p] of Object.entries(manifest.processes)) {
      if (RESERVED.has(type)) continue;
      processes[type] = {
        ...(p.command !== undefined ? { command: p.command } : {}),
        ...(p.instances !== undefined ? { instances: p.instances } : {}),
      };
    }
    set.processes = JSON.stringify(processes);
    notes.push(
      `processes ${
        Object.entries(processes)
          .map(([t, p]) => `${t}${p.instances !== undefined ? `=${p.instances}` : ''}`)
          .join(' ') || '(none)'
      }`,
    );
  }
  if (manifest.env) {
    const env: Record<string, string> = { ...app.env };
    for (const [k, v] of Object.entries(manifest.env)) {
      if (RESERVED.has(k)) continue;
      if (Object.hasOwn(app.env, k) && isSecretReference(app.env[k] as string))
        throw new MinipaasError(
          'MINIPAAS_ERR_VALIDATION',
          `${APP_MANIFEST} sets env ${k}, which is a secret of ${app.name}: secrets are set with minipaas env:set --secret, not in the repository`,
        );
      const value = String(v);
      if (isSecretReference(value))
        throw new MinipaasError(
          'MINIPAAS_ERR_VALIDATION',
          `${APP_MANIFEST}: env ${k} looks like a sealed secret`,
        );
      env[k] = value;
    }
    set.env = JSON.stringify(env);
    notes.push(`env ${Object.keys(manifest.env).join(', ')}`);
  }
  if (manifest.healthcheck) {
    set.healthcheck_path = manifest.healthcheck.path;
    notes.push(`health check ${manifest.healthcheck.path}`);
  }
  if (manifest.resources?.cpuMillicores !== undefined) set.cpu_millicores = manifest.resources.cpuMillicores;
  if (manifest.resources?.memoryMb !== undefined) set.memory_mb = manifest.resources.memoryMb;
  if (manifest.resources && Object.keys(manifest.resources).length > 0)
    notes.push(
      `resources ${Object.entries(manifest.resources)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
  if (Object.keys(set).length === 0) return app;
  await say(`-----> ${APP_MANIFEST}: ${notes.join('; ')}`);
  return db
    .updateTable('apps')
    .set({ ...set, updated_at: new Date() })
    .where('id', '=', app.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}
