/**
 * Heroku and Dokku `app.json`: the parts MiniPaaS honours (scripts, env, formation, healthchecks, cron).
 * Unknown keys are ignored; a known key with a bad shape is a MINIPAAS_ERR_VALIDATION naming the field.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { MinipaasError } from './errors.ts';

/** Largest app.json read from a release (bytes). */
export const APP_JSON_MAX_BYTES = 256 * 1024;

const command = z.string().min(1).max(8192);

const envEntry = z.union([
  z.string().transform((value) => ({ value, required: false as boolean })),
  z
    .object({
      value: z.string().optional(),
      required: z.boolean().optional(),
      generator: z.literal('secret').optional(),
      description: z.string().optional(),
    })
    .transform((e) => ({ ...e, required: e.required ?? false })),
]);

const check = z.object({
  type: z.enum(['startup', 'liveness', 'readiness']).default('startup'),
  name: z.string().optional(),
  path: z.string().startsWith('/').default('/'),
  content: z.string().optional(),
  attempts: z.number().int().min(1).max(100).optional(),
  timeout: z.number().positive().max(600).optional(),
  wait: z.number().min(0).max(600).optional(),
  initialDelay: z.number().min(0).max(3600).optional(),
});

/**
 * A cron schedule: 5 fields, or 6 with seconds first, or a nickname (`@daily`). The scheduler (croner)
 * checks the fields themselves; this keeps out what cannot be one.
 */
const CRON_SCHEDULE =
  /^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?#-]+( [0-9A-Za-z*/,?#-]+){4,5})$/;

/** Dokku's app.json `cron` entry. */
const cronEntry = z.object({
  command,
  schedule: z
    .string()
    .max(200)
    .regex(CRON_SCHEDULE, 'must be 5 cron fields (6 with seconds), or @daily etc.'),
});

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
const typeName = /^[a-z][a-z0-9_-]*$/i;

const schema = z.object({
  scripts: z
    .object({
      postdeploy: z.union([command, z.object({ command })]).optional(),
      dokku: z.object({ predeploy: command.optional(), postdeploy: command.optional() }).optional(),
    })
    .optional(),
  env: z.record(z.string().regex(envName), z.unknown()).optional(),
  formation: z.record(z.string().regex(typeName), z.unknown()).optional(),
  healthchecks: z.object({ web: z.array(check).max(20).optional() }).optional(),
  cron: z.array(cronEntry).max(20).optional(),
});

/** One app.json cron job (Dokku format): a command of the release run on a schedule. */
export interface AppJsonCron {
  command: string;
  schedule: string;
}

/** One app.json health check (Dokku format; times in seconds). */
export interface AppJsonCheck {
  type: 'startup' | 'liveness' | 'readiness';
  name?: string;
  path: string;
  content?: string;
  attempts?: number;
  timeout?: number;
  wait?: number;
  initialDelay?: number;
}

/** One app.json env entry, normalised (a plain string becomes `{value}`). */
export interface AppJsonEnv {
  value?: string;
  required: boolean;
  generator?: 'secret';
  description?: string;
}

/** The honoured parts of an app.json, normalised. Maps are null-prototype objects. */
export interface AppJson {
  scripts: { predeploy?: string; postdeploy?: string; herokuPostdeploy?: string };
  env: Record<string, AppJsonEnv>;
  formation: Record<string, { quantity: number; size?: string }>;
  healthchecks: { web: AppJsonCheck[] };
  /** Scheduled commands; run by the swarm runtime (docs/swarm.md). Absent in releases made before it. */
  cron?: AppJsonCron[];
}

const formationEntry = z.object({ quantity: z.number().int().min(0).max(100), size: z.string().optional() });

function invalid(field: string, message: string): MinipaasError {
  return new MinipaasError('MINIPAAS_ERR_VALIDATION', `app.json: ${field || '(root)'}: ${message}`, {
    details: { field },
  });
}

/** Validates each own entry of a map (JSON.parse keeps `__proto__` as an own key) into a null-prototype object. */
function toMap<T>(name: string, raw: unknown, entry: z.ZodType<T>): Record<string, T> {
  const out = Object.create(null) as Record<string, T>;
  if (raw === undefined) return out;
  for (const key of Object.keys(raw as object)) {
    const field = `${name}.${key}`;
    if (!(name === 'env' ? envName : typeName).test(key)) throw invalid(field, 'invalid name');
    const r = entry.safeParse((raw as Record<string, unknown>)[key]);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw invalid([field, ...(issue?.path ?? []).map(String)].join('.'), issue?.message ?? 'invalid');
    }
    out[key] = r.data;
  }
  return out;
}

/**
 * Parses app.json text. Throws MINIPAAS_ERR_VALIDATION naming the field for bad JSON or bad shapes.
 * Keys such as `__proto__` are treated as plain names (the result's maps have no prototype).
 */
export function parseAppJson(text: string): AppJson {
  if (text.length > APP_JSON_MAX_BYTES) {
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `app.json is larger than ${APP_JSON_MAX_BYTES} bytes`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `app.json is not valid JSON: ${(err as Error).message}`,
    );
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'app.json must be a JSON object');
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issue.path.map(String).join('.') : '';
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `app.json: ${field || '(root)'}: ${issue?.message ?? 'invalid'}`,
      {
        details: { field },
      },
    );
  }
  const d = parsed.data;
  const hp = d.scripts?.postdeploy;
  return {
    scripts: {
      predeploy: d.scripts?.dokku?.predeploy,
      postdeploy: d.scripts?.dokku?.postdeploy,
      herokuPostdeploy: typeof hp === 'string' ? hp : hp?.command,
    },
    env: toMap('env', (raw as Record<string, unknown>).env, envEntry) as Record<string, AppJsonEnv>,
    formation: toMap('formation', (raw as Record<string, unknown>).formation, formationEntry),
    healthchecks: { web: d.healthchecks?.web ?? [] },
    cron: (d.cron ?? []).map((c) => ({ command: c.command, schedule: c.schedule })),
  };
}

/** Reads and parses `dir/app.json`; null when absent. Larger than APP_JSON_MAX_BYTES → MINIPAAS_ERR_VALIDATION. */
export async function readAppJson(dir: string): Promise<AppJson | null> {
  const file = join(dir, 'app.json');
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) return null;
    size = st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  if (size > APP_JSON_MAX_BYTES) {
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `app.json is larger than ${APP_JSON_MAX_BYTES} bytes`);
  }
  return parseAppJson(await readFile(file, 'utf8'));
}
