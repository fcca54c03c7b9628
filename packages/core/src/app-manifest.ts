/**
 * `@minipaas/core/app-manifest` (its own entry: it loads the YAML parser, which nothing else in core needs):
 * `minipaas.yaml` at the root of an app's source: the settings that travel with the code (docs/docker.md).
 *
 * ```yaml
 * runtime: docker                 # process | docker; taken on the app's first deploy
 * dockerfile: docker/web.Dockerfile   # relative to the source root (default Dockerfile)
 * buildCache: false               # use the previous image as build cache (default true)
 * # applied with every release, so the repository is the source of truth (docs/git.md):
 * processes:                      # commands and formation; replaces the app's process settings
 *   web: { command: node server.js, instances: 2 }
 *   worker: { instances: 1 }      # command from the Procfile
 * env: { NODE_ENV: production }   # config vars (never secrets), set or overwritten
 * healthcheck: { path: /health }
 * resources: { memoryMb: 256, cpuMillicores: 500 }
 * ```
 */
import { createRequire } from 'node:module';
import { z } from 'zod';
import { MinipaasError } from './errors.ts';
import { ENV_NAME_RE, processTypeSchema } from './names.ts';

/** The YAML parser, loaded on the first parse: minipaasd imports this module but rarely parses a manifest. */
let yamlParse: typeof import('yaml').parse | undefined;
function parse(text: string, opts: Parameters<typeof import('yaml').parse>[2]): unknown {
  yamlParse ??= (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse;
  return yamlParse(text, opts);
}

/** File name of the app manifest at the source root. */
export const APP_MANIFEST = 'minipaas.yaml';

const relativePath = z
  .string()
  .min(1)
  .max(256)
  .refine(
    (p) =>
      !p.includes('\0') &&
      !p.includes('\\') &&
      !p.startsWith('/') &&
      !p.split('/').some((seg) => seg === '..'),
    'must be a path inside the source (no leading /, no ..)',
  );

/** A mapping whose keys may not be prototype names (they would vanish from a parsed record). */
const ownKeys = <T extends z.ZodType>(schema: T) =>
  z
    .unknown()
    .superRefine((v, ctx) => {
      if (v && typeof v === 'object')
        for (const k of Object.keys(v))
          if (k === '__proto__' || k === 'constructor' || k === 'prototype')
            ctx.addIssue({ code: 'custom', message: `${k} is a reserved name` });
    })
    .pipe(schema);

export const appManifestSchema = z.object({
  /** Runtime of the app; applied on its first deploy, refused later when it differs. */
  runtime: z.enum(['process', 'docker', 'swarm']).optional(),
  /** Dockerfile path relative to the source root (docker runtime). */
  dockerfile: relativePath.optional(),
  /** Build with the app's previous image as cache (docker runtime; default true). */
  buildCache: z.boolean().optional(),
  /** Process commands and formation, applied with each release (replaces the app's process settings). */
  processes: ownKeys(
    z.record(
      processTypeSchema,
      z
        .object({
          command: z.string().min(1).max(4096).optional(),
          instances: z.number().int().min(0).max(100).optional(),
        })
        .strict(),
    ),
  ).optional(),
  /** Config vars (not secrets), set with each release. */
  env: ownKeys(
    z
      .record(
        z.string().regex(ENV_NAME_RE, 'env names are letters, digits and _'),
        z.union([z.string().max(65536), z.number(), z.boolean()]),
      )
      .refine((e) => Object.keys(e).length <= 200, 'at most 200 env vars'),
  ).optional(),
  /** The web health check. */
  healthcheck: z
    .object({
      path: z
        .string()
        .regex(/^\/[^\s]*$/, 'must start with /')
        .max(500),
    })
    .strict()
    .optional(),
  /** The app's own limits (docs/apps.md). */
  resources: z
    .object({
      cpuMillicores: z.number().int().min(10).max(1_024_000).optional(),
      memoryMb: z.number().int().min(4).max(1_048_576).optional(),
    })
    .strict()
    .optional(),
});

/** A parsed `minipaas.yaml`, with the top-level keys it does not know (ignored, and said so in the deploy log). */
export type AppManifest = z.infer<typeof appManifestSchema> & { unknownKeys: string[] };

/** Parses the text of a `minipaas.yaml`; a validation error names the file and the key. */
export function parseAppManifest(text: string): AppManifest {
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 50, uniqueKeys: true });
  } catch (err) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `${APP_MANIFEST}: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  if (doc === null || doc === undefined) return { unknownKeys: [] };
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${APP_MANIFEST}: expected a mapping of settings`);
  const parsed = appManifestSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `${APP_MANIFEST}: ${issue?.path.join('.') || 'document'} ${issue?.message ?? 'is invalid'}`,
    );
  }
  const known = new Set(Object.keys(appManifestSchema.shape));
  const unknownKeys = Object.keys(doc).filter((k) => !known.has(k));
  return { ...parsed.data, unknownKeys };
}
