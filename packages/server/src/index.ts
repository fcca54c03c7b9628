export type { ServerContext } from './context.ts';
export { RuntimeRegistry } from './runtime/runtime-registry.ts';
export { type ControlPlane, type ControlPlaneOptions, createControlPlane, VERSION } from './server.ts';
export { openStore, type Store } from './store/store.ts';
