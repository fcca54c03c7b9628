/** `minipaas config create|delete|prune|ls`: Docker configs (app settings stay under `env:*`). */
import type { Command } from 'commander';
import type { Context } from '../context.ts';
import { registerVersionedObjects } from './secret.ts';

export function registerDockerConfig(program: Command, ctx: Context): void {
  registerVersionedObjects(program, ctx, 'config');
}
