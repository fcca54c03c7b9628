/**
 * The name rules as plain regular expressions, without zod: importable through `@minipaas/core/name-patterns`
 * by code that must start fast (the CLI). `names.ts` builds the zod schemas on them and re-exports them.
 */

/** A UUID (any version), the shape of every id MiniPaaS hands out. */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** DNS-label-safe app name: lowercase letters, digits and dashes, starts with a letter, 1-40 chars. */
export const APP_NAME_RE = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;

/** Process type names as in a Procfile (web, worker, release, clock, ...): lowercase, 1-30 chars. */
export const PROCESS_TYPE_RE = /^[a-z][a-z0-9_-]{0,29}$/;

/**
 * Names that collide with members of `Object.prototype` (or are about to in a JSON map); refused as
 * process types so that no lookup can ever reach an inherited property.
 */
export const RESERVED_PROCESS_TYPES: ReadonlySet<string> = new Set(['constructor', 'prototype', '__proto__']);

/** True when `name` is a valid process type name. */
export function isProcessType(name: string): boolean {
  return PROCESS_TYPE_RE.test(name) && !RESERVED_PROCESS_TYPES.has(name);
}

/** Environment variable names. */
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
