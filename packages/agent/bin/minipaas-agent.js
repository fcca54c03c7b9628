#!/usr/bin/env node
// minipaas-agent: the MiniPaaS node agent (app processes, logs, router).
import module from 'node:module';

// Cache compiled (and type-stripped) modules on disk: start-up drops by ~40% from the second run on.
module.enableCompileCache?.();

await import('../src/main.ts');
