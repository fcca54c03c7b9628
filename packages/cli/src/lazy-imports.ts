/**
 * The heavy packages, imported by the commands that use them when they run: `minipaas --version`, every
 * `--help` and the API commands start without zod and the API schemas (`@minipaas/core`'s index), the swarm
 * toolkit (yaml, croner, its builders) or node-tar. Modules that need only a constant or a path helper of
 * core import its zod-free subpaths (`@minipaas/core/paths`, `@minipaas/core/name-patterns`, ...).
 */
import type { MinipaasConfig } from '@minipaas/core';

/** The swarm toolkit (`certs`, `code`, `secret`, `config`, `shell`, `deploy build|rollout|canary|routing`). */
export const swarm = () => import('@minipaas/swarm');

/** Directory packing for `minipaas deploy` (node-tar, ignore). */
export const pack = () => import('./pack.ts');

/** The platform's validated configuration (core's loadConfig: zod, but not the API schemas of its index). */
export async function loadConfig(env: NodeJS.ProcessEnv): Promise<MinipaasConfig> {
  const config = await import('@minipaas/core/config');
  return config.loadConfig(env);
}
