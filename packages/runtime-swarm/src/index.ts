/**
 * `@minipaas/runtime-swarm`: the `swarm` runtime of platform apps — one Docker Swarm service per process
 * type on a (TLS-connected) manager, images in the private registry, Caddy as the edge — and the node
 * views behind `minipaas nodes`.
 */
export * from './log-frames.ts';
export * from './service-spec.ts';
export * from './swarm-driver.ts';
export * from './swarm-edge.ts';
export * from './swarm-nodes.ts';
export * from './swarm-runtime.ts';
