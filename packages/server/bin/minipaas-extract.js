#!/usr/bin/env node
// Unpacks one upload for minipaasd (see src/deploy/upload-staging.ts): the prebuilt JavaScript of
// src/deploy/extract-process.ts, so the child neither loads the TypeScript stripper nor waits for it.
import module from 'node:module';
import { registerPrebuilt } from '@minipaas/core/prebuilt';

registerPrebuilt();
module.enableCompileCache?.();

await import('../src/deploy/extract-process.ts');
