import { formatIssues, MinipaasError } from '@minipaas/core';
import type { z } from 'zod';

/** Parses input with a zod schema; bad input becomes MINIPAAS_ERR_VALIDATION with readable issues. */
export function parse<S extends z.ZodType>(schema: S, data: unknown, what = 'request'): z.output<S> {
  const r = schema.safeParse(data ?? {});
  if (!r.success)
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `invalid ${what}: ${formatIssues(r.error)}`);
  return r.data;
}
