import { z } from 'zod';
import { APP_NAME_RE, PROCESS_TYPE_RE, RESERVED_PROCESS_TYPES, UUID_RE } from './name-patterns.ts';

export { APP_NAME_RE, ENV_NAME_RE, isProcessType, PROCESS_TYPE_RE, UUID_RE } from './name-patterns.ts';

export const appNameSchema = z
  .string()
  .regex(
    APP_NAME_RE,
    'app name must be 1-40 lowercase letters, digits or dashes, start with a letter and not end with a dash',
  )
  .refine((n) => !UUID_RE.test(n), 'an app name cannot have the shape of an id (UUID)');

export const processTypeSchema = z
  .string()
  .regex(
    PROCESS_TYPE_RE,
    'process type must be 1-30 lowercase letters, digits, dashes or underscores, starting with a letter',
  )
  .refine((n) => !RESERVED_PROCESS_TYPES.has(n), 'this process type name is reserved');

/** Turns a free-form name into a slug (used when a project or service has no slug). */
export function slugify(input: string): string {
  return input
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/g, '');
}
