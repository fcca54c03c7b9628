import { MinipaasSqlError } from './errors.ts';

/** Queue and stream names: lowercase identifier, starting with a letter, at most 48 characters. */
export const NAME_PATTERN = /^[a-z][a-z0-9_]{0,47}$/;

/** Largest batch for dequeue and stream consume. */
export const MAX_BATCH = 1000;
/** Largest batch for enqueueBatch and publishBatch. */
export const MAX_WRITE_BATCH = 10_000;

/** True when `name` is a valid queue or stream name. */
export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}

export function assertName(
  kind: 'queue' | 'stream',
  sqlFunction: string,
  name: unknown,
): asserts name is string {
  if (isValidName(name)) return;
  const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : String(name);
  throw new MinipaasSqlError(
    `${sqlFunction}: invalid ${kind} name ${shown}: names must match ${NAME_PATTERN.source}`,
    { sqlFunction, [kind]: typeof name === 'string' ? name : String(name), code: '22023' },
  );
}
