export { demuxLogs } from './container-logs.ts';
export {
  DockerBuilder,
  type DockerBuilderOptions,
  type DockerBuildRun,
  GENERATED_DOCKERFILE,
  imageRepo,
  type StackInfo,
} from './docker-builder.ts';
export { CONTAINER_PORT, DockerDriver, type DockerDriverOptions, IMAGE_CMD, LABEL } from './docker-driver.ts';
export {
  type CreateDockerRuntimeOptions,
  createDockerRuntime,
  type DockerRuntime,
} from './docker-runtime.ts';
export {
  aptMirror,
  BASE_IMAGE,
  type BootstrapOptions,
  type BootstrapResult,
  bootstrapImages,
  NODE_IMAGE,
} from './images-bootstrap.ts';
export { ONE_OFF_LABEL, type OneOffResult, type OneOffRun, runOneOff } from './one-off.ts';
export { AgentRouteClient, type RouteApi, type RouteState } from './route-client.ts';
