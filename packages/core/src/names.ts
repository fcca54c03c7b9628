import { z } from 'zod';

/** A UUID (any version), the shape of every id MiniPaaS hands out. */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** DNS-label-safe app name: lowercase letters, digits and dashes, starts with a letter, 1-40 chars. */
export const APP_NAME_RE = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;
export const appNameSchema = z
  .string()
  .regex(
    APP_NAME_RE,
    'app name must be 1-40 lowercase letters, digits or dashes, start with a letter and not end with a dash',
  )
  .refine((n) => !UUID_RE.test(n), 'an app name cannot have the shape of an id (UUID)');

/** Process type names as in a Procfile (web, worker, release, clock, ...): lowercase, 1-30 chars. */
export const PROCESS_TYPE_RE = /^[a-z][a-z0-9_-]{0,29}$/;

/**
 * Names that collide with members of `Object.prototype` (or are about to in a JSON map); refused as
 * process types so that no lookup can ever reach an inherited property.
 */
const RESERVED_PROCESS_TYPES = new Set(['constructor', 'prototype', '__proto__']);

/** True when `name` is a valid process type name. */
export function isProcessType(name: string): boolean {
  return PROCESS_TYPE_RE.test(name) && !RESERVED_PROCESS_TYPES.has(name);
}

export const processTypeSchema = z
  .string()
  .regex(
    PROCESS_TYPE_RE,
    'process type must be 1-30 lowercase letters, digits, dashes or underscores, starting with a letter',
  )
  .refine((n) => !RESERVED_PROCESS_TYPES.has(n), 'this process type name is reserved');

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
