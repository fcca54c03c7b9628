export { AGENT_VERSION, type AgentHandle, type StartAgentOptions, startAgent } from './agent.ts';
export { AgentClient, type AgentClientOptions, type LogsQuery } from './agent-client.ts';
export {
  type CgroupOptions,
  type Cgroups,
  createCgroups,
  defaultCgroupRoot,
  type InstanceCgroup,
  killCgroupTree,
} from './cgroup.ts';
export { DEFAULT_RESTART_POLICY, type RestartPolicy } from './instance.ts';
export { type RouterHandle, type RouterOptions, type RouteTarget, startRouter } from './router.ts';
export {
  appCacheDir,
  appDirs,
  ensureReachable,
  lockTree,
  ownDir,
  prepareReleaseDir,
  type RunAs,
  resolveRunAs,
} from './run-as.ts';
