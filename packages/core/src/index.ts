export * from './agent-protocol.ts';
export * from './config.ts';
export * from './errors.ts';
export * from './names.ts';
export * from './paths.ts';
export * from './private-dir.ts';
export * from './procfile.ts';
export * from './schemas.ts';
