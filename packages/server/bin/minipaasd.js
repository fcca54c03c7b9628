#!/usr/bin/env node
// minipaasd: the MiniPaaS control plane. TypeScript sources run directly on Node >= 22.18 (type stripping),
// or as the JavaScript `npm install` built from them (see @minipaas/core/prebuilt).
import module from 'node:module';
import { registerPrebuilt } from '@minipaas/core/prebuilt';

// The sources' JavaScript built by `npm install` (prepare): no TypeScript stripper in this long-lived process.
registerPrebuilt();
// Cache compiled modules on disk: start-up drops by ~40% from the second run on.
module.enableCompileCache?.();

await import('../src/main.ts');
