/**
 * `@minipaas/core/app-manifest` (its own entry: it loads the YAML parser, which nothing else in core needs):
 * `minipaas.yaml` at the root of an app's source: the settings that travel with the code (docs/docker.md).
 *
 * ```yaml
 * runtime: docker                 # process | docker; taken on the app's first deploy
 * dockerfile: docker/web.Dockerfile   # relative to the source root (default Dockerfile)
 * buildCache: false               # use the previous image as build cache (default true)
 * ```
 */
import { parse } from 'yaml';
import { z } from 'zod';
import { MinipaasError } from './errors.ts';

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

export const appManifestSchema = z.object({
  /** Runtime of the app; applied on its first deploy, refused later when it differs. */
  runtime: z.enum(['process', 'docker', 'swarm']).optional(),
  /** Dockerfile path relative to the source root (docker runtime). */
  dockerfile: relativePath.optional(),
  /** Build with the app's previous image as cache (docker runtime; default true). */
  buildCache: z.boolean().optional(),
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
