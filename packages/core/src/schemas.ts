/** zod schemas of the REST API payloads, shared by server, CLI and dashboard. */
import { z } from 'zod';
import { appNameSchema, ENV_NAME_RE, processTypeSchema, slugify } from './names.ts';

function checkEnvKeys(r: Record<string, unknown>, ctx: z.RefinementCtx): void {
  const keys = Object.keys(r);
  if (keys.length > 500) ctx.addIssue({ code: 'custom', message: 'at most 500 env vars' });
  for (const k of keys) {
    if (!ENV_NAME_RE.test(k)) {
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message: `env var names must match [A-Za-z_][A-Za-z0-9_]* (got "${k}")`,
      });
    }
  }
}

export const envSchema = z.record(z.string(), z.string().max(65536)).superRefine(checkEnvKeys);

export const processSchema = z.object({
  command: z.string().min(1).max(4096).optional(),
  instances: z.number().int().min(0).max(100).optional(),
});

export const createProjectSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    slug: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/, 'slug must be lowercase letters, digits and dashes')
      .optional(),
    description: z.string().max(1000).optional(),
  })
  .strict()
  .transform((p) => ({ ...p, slug: p.slug ?? slugify(p.name) }));
export type CreateProjectInput = z.infer<typeof createProjectSchema>;

export const createAppSchema = z
  .object({
    /** The app name (DNS-safe). In the seed-002 service shape `name` is a display name and `slug` the app name. */
    name: z.string().max(100).optional(),
    slug: appNameSchema.optional(),
    project: z.string().min(1).max(100).optional(),
    /** `process` or `docker`; unset: the platform's `runtime.default`. */
    runtime: z.enum(['process', 'docker', 'swarm']).optional(),
    /** seed 004: an app can be just a command */
    command: z.string().min(1).max(4096).optional(),
    processes: z.record(processTypeSchema, processSchema).optional(),
    env: envSchema.optional(),
    type: z.string().max(40).optional(),
    description: z.string().max(1000).optional(),
    healthcheckPath: z
      .string()
      .regex(/^\/[^\s]*$/, 'healthcheckPath must start with /')
      .max(500)
      .optional(),
    build_source: z.unknown().optional(),
    ports: z.unknown().optional(),
    repo_url: z.string().max(2000).optional(),
    /** A git source: `{url, ref}` or `URL#ref` (docs/git.md; checked by the server's git-url.ts). */
    git: z.unknown().optional(),
    /** The branch of `repo_url` (seed 003). */
    branch: z.string().max(255).optional(),
  })
  .strict()
  .transform((a, ctx) => {
    const appName = a.slug ?? a.name;
    if (appName === undefined) {
      ctx.addIssue({ code: 'custom', path: ['name'], message: 'name is required' });
      return z.NEVER;
    }
    const check = appNameSchema.safeParse(appName);
    if (!check.success) {
      ctx.addIssue({
        code: 'custom',
        path: [a.slug ? 'slug' : 'name'],
        message: check.error.issues[0]?.message ?? 'invalid app name',
      });
      return z.NEVER;
    }
    return { ...a, name: appName, ...(a.slug && a.name ? { displayName: a.name } : {}) };
  });
export type CreateAppInput = z.output<typeof createAppSchema>;

export const patchAppSchema = z
  .object({
    env: z.record(z.string(), z.string().max(65536).nullable()).superRefine(checkEnvKeys).optional(),
    /** Secret env vars: sealed at rest, masked in answers and logs (null removes one). */
    secrets: z
      .record(z.string(), z.string().min(1).max(65536).nullable())
      .superRefine(checkEnvKeys)
      .optional(),
    processes: z.record(processTypeSchema, processSchema).optional(),
    command: z.string().min(1).max(4096).optional(),
    status: z.enum(['stopped', 'running']).optional(),
    description: z.string().max(1000).optional(),
    healthcheckPath: z
      .string()
      .regex(/^\/[^\s]*$/)
      .max(500)
      .nullable()
      .optional(),
  })
  .strict();
export type PatchAppInput = z.infer<typeof patchAppSchema>;

/** `{"replicas": N}` scales web; `{"web": 2, "worker": 1}` or `{"processes": {...}}` scale per type. */
export const scaleSchema = z.union([
  z
    .object({ replicas: z.number().int().min(0).max(100), processType: processTypeSchema.optional() })
    .strict(),
  z.object({ processes: z.record(processTypeSchema, z.number().int().min(0).max(100)) }).strict(),
  z
    .record(processTypeSchema, z.number().int().min(0).max(100))
    .refine((r) => Object.keys(r).length > 0, 'give at least one process type'),
]);
export type ScaleInput = z.infer<typeof scaleSchema>;

export function scaleToMap(input: ScaleInput): Record<string, number> {
  if ('replicas' in input && typeof input.replicas === 'number') {
    return { [(input as { processType?: string }).processType ?? 'web']: input.replicas };
  }
  if ('processes' in input && typeof input.processes === 'object')
    return input.processes as Record<string, number>;
  return input as Record<string, number>;
}

/** Query of a deploy upload (`POST /api/v1/apps/:id/deploy`, body = gzipped tarball). */
export const deployQuerySchema = z
  .object({
    command: z.string().min(1).max(4096).optional(),
    message: z.string().max(500).optional(),
  })
  .strict();

/** JSON deploy (no upload): a plain command, or a redeploy of the current source. */
export const deployJsonSchema = z
  .object({
    command: z.string().min(1).max(4096).optional(),
    message: z.string().max(500).optional(),
  })
  .strict();

export const logsQuerySchema = z
  .object({
    tail: z.coerce.number().int().min(0).max(10000).default(100),
    follow: z
      .enum(['true', 'false', '1', '0'])
      .optional()
      .transform((v) => v === 'true' || v === '1'),
    process: processTypeSchema.optional(),
  })
  .strict();

export type DeploymentStatus =
  | 'queued'
  | 'building'
  | 'deploying'
  | 'running'
  | 'failed'
  | 'cancelled'
  | 'stopped';
export type AppStatus = 'created' | 'deploying' | 'running' | 'failed' | 'stopped' | 'crashed';

/** An app as the API returns it. */
export interface AppView {
  id: string;
  name: string;
  projectId: string;
  runtime: 'process' | 'docker' | 'swarm';
  status: AppStatus;
  processes: Record<string, { command: string | null; instances: number }>;
  /** Env vars; a secret's value is `••••` unless the request asked `?reveal=true` with the permission. */
  env: Record<string, string>;
  /** Names of the env vars that are secrets. */
  secrets: string[];
  healthcheckPath: string | null;
  currentRelease: number | null;
  url: string;
  pathUrl: string;
  createdAt: string;
  updatedAt: string;
}

export interface ProjectView {
  id: string;
  name: string;
  slug: string;
  description: string | null;
  createdAt: string;
  /** The team that owns the project (access control). */
  teamId?: string;
}

export interface DeploymentView {
  id: string;
  appId: string;
  appName: string;
  release: number | null;
  status: DeploymentStatus;
  /** `build` (a source to build), `restart` (same release, new instances) or `rollback` (an old release again). */
  kind: 'build' | 'restart' | 'rollback';
  source: string;
  message: string | null;
  error: string | null;
  log: string[];
  /** Place in the build queue (1 = next to start) while `queued`, else null. */
  position: number | null;
  /** Build attempts started (a build cut off by a platform failure is retried `builds.retries` times). */
  attempts: number;
  /** A cancel was asked for and the build worker has not stopped the deployment yet. */
  cancelRequested: boolean;
  /** The later deployment of the same app that made this queued one unnecessary (coalescing). */
  supersededBy: string | null;
  /** The release version a rollback deployment redeploys. */
  rollbackTo: number | null;
  /** The git commit a deployment from git builds (docs/git.md), else null. */
  commit?: { sha: string; message: string | null } | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}
