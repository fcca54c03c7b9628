/**
 * @minipaas/runtime-process: the `process` runtime as the control plane sees it. The node agent
 * (@minipaas/agent) runs the processes; this package talks to it and prepares what it runs.
 */
export { AgentClient, type AgentClientOptions, type LogsQuery } from './agent-client.ts';
export { type AgentApi, ProcessDriver, toAgentSpec } from './process-driver.ts';
export {
  appCacheDir,
  appDirs,
  ensureReachable,
  lockTree,
  ownDir,
  prepareAppDirs,
  prepareReleaseDir,
  type RunAs,
  resolveRunAs,
} from './run-as.ts';
