import { formatIssues, MinipaasError } from '@minipaas/core';
import type { z } from 'zod';

/** Parses input with a zod schema; bad input becomes MINIPAAS_ERR_VALIDATION with readable issues. */
export function parse<S extends z.ZodType>(schema: S, data: unknown, what = 'request'): z.output<S> {
  if (Buffer.isBuffer(data) || typeof data === 'string')
    throw new MinipaasError(
      'MINIPAAS_ERR_UNSUPPORTED_MEDIA',
      `the ${what} must be JSON (Content-Type: application/json)`,
    );
  const r = schema.safeParse(data ?? {});
  if (!r.success)
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `invalid ${what}: ${formatIssues(r.error)}`);
  return r.data;
}
