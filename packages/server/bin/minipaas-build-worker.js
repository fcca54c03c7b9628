#!/usr/bin/env node
// The MiniPaaS build worker, started by minipaasd (see src/deploy/build-worker-process.ts). TypeScript sources
// run directly, or as the JavaScript `npm install` built from them (see @minipaas/core/prebuilt).
import module from 'node:module';
import { registerPrebuilt } from '@minipaas/core/prebuilt';

registerPrebuilt();
module.enableCompileCache?.();

await import('../src/deploy/build-worker-main.ts');
