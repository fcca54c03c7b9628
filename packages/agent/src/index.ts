export { AGENT_VERSION, type AgentHandle, type StartAgentOptions, startAgent } from './agent.ts';
export {
  type CgroupOptions,
  type Cgroups,
  createCgroups,
  defaultCgroupRoot,
  type InstanceCgroup,
  killCgroupTree,
} from './cgroup.ts';
export { CrashTracker, DEFAULT_RESTART_POLICY, type RestartPolicy } from './restart-policy.ts';
export { type RouterHandle, type RouterOptions, type RouteTarget, startRouter } from './router/router.ts';
