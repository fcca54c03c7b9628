export type { ServerContext } from './context.ts';
export { type AgentApi, ProcessDriver } from './runtime/process-driver.ts';
export type { LogQuery, RuntimeDriver } from './runtime/runtime-driver.ts';
export { type ControlPlane, type ControlPlaneOptions, createControlPlane, VERSION } from './server.ts';
export { openStore, type Store } from './store/store.ts';
