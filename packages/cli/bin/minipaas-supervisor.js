#!/usr/bin/env node
// The long-running process of `minipaas up` (the platform supervisor), started by the CLI: not the CLI itself,
// so it holds neither commander and the commands nor zod (src/supervisor-main.ts).
import module from 'node:module';

module.enableCompileCache?.();
// The sources' JavaScript built by `npm install` (prepare): no TypeScript stripper in memory (decision 0006).
const { registerPrebuilt } = await import('@minipaas/core/prebuilt');
registerPrebuilt();
const { supervisorMain } = await import('../src/supervisor-main.ts');
const code = await supervisorMain(process.argv, process.env);
if (process.stdout.writableLength > 0) await new Promise((r) => process.stdout.once('drain', r));
process.exit(code);
