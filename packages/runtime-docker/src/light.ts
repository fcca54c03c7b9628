/**
 * `@minipaas/runtime-docker/light`: what minipaasd and the pipeline need without loading dockerode
 * (the lazily loaded driver and the shared names). Only node builtins and `@minipaas/core` behind it.
 */
export { CONTAINER_PORT, IMAGE_CMD, LABEL } from './constants.ts';
export {
  engineVersion,
  imageExists,
  LazyDockerDriver,
  type LazyDockerOptions,
  lazyDockerRuntime,
} from './lazy-docker-driver.ts';
