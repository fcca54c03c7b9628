import { createHash } from 'node:crypto';
import type { RuntimeSpec } from '@minipaas/core';

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Digest of a docker spec: a change of any field rolls the app's containers. */
export function specDigest(spec: RuntimeSpec): string {
  return createHash('sha256').update(stable(spec)).digest('base64url');
}
