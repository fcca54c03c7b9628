import type { MinipaasConfig } from '@minipaas/core';
import type { AppService } from '../services/app-service.ts';
import { applyResources } from '../services/resource-limits.ts';
import type { VolumeService } from './volume-service.ts';

/**
 * Completes every runtime spec of `apps` with the app's volumes and resource limits (issue 9). Installed
 * wherever specs are built: minipaasd and the build worker process.
 */
export function installSpecHooks(apps: AppService, config: MinipaasConfig, volumes: VolumeService): void {
  apps.specHooks.push(async (app, spec) => {
    const mounts = await volumes.mountsFor(app);
    if (mounts.length > 0) spec.volumes = mounts;
  });
  apps.specHooks.push(async (app, spec) => applyResources(app, config, spec));
}
