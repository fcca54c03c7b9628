import { z } from 'zod';

/** DNS-label-safe app name: lowercase letters, digits and dashes, starts with a letter, 1-40 chars. */
export const APP_NAME_RE = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;
export const appNameSchema = z
  .string()
  .regex(
    APP_NAME_RE,
    'app name must be 1-40 lowercase letters, digits or dashes, start with a letter and not end with a dash',
  );

/** Process type names as in a Procfile (web, worker, release, clock, ...). */
export const PROCESS_TYPE_RE = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,29}$/;
export const processTypeSchema = z
  .string()
  .regex(PROCESS_TYPE_RE, 'process type must be alphanumeric (dashes and underscores allowed)');

/** Environment variable names. */
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

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
