#!/usr/bin/env node
// minipaasd: the MiniPaaS control plane. TypeScript sources run directly on Node >= 22.18 (type stripping).
import '../src/main.ts';
