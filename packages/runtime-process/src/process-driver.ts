import {
  type AgentAppMetrics,
  type AgentAppState,
  type AgentHealth,
  type AppSpec,
  isMinipaasError,
  type LogLine,
  type LogQuery,
  MinipaasError,
  type RuntimeDriver,
  type RuntimeHealth,
  type RuntimeSpec,
} from '@minipaas/core';

/** The subset of the node agent's client ({@link AgentClient}) the process driver uses. */
export interface AgentApi {
  health(): Promise<AgentHealth>;
  listApps(): Promise<AgentAppState[]>;
  getApp(name: string): Promise<AgentAppState | null>;
  putApp(spec: AppSpec): Promise<AgentAppState>;
  deleteApp(name: string): Promise<unknown>;
  restartApp(name: string): Promise<AgentAppState>;
  logs(name: string, opts: { tail?: number; process?: string }): Promise<LogLine[]>;
  followLogs(
    name: string,
    opts: { tail?: number; process?: string; signal?: AbortSignal },
  ): AsyncIterable<LogLine>;
  watchApp(name: string, opts: { signal?: AbortSignal }): AsyncIterable<AgentAppState>;
  /** Recent CPU/memory samples (agents without it: no metrics). */
  metrics?(name: string): Promise<AgentAppMetrics | null>;
}

/** Runtime driver for the default `process` runtime: apps run as OS processes under the node agent. */
export class ProcessDriver implements RuntimeDriver {
  readonly name = 'process';
  readonly #agent: AgentApi;

  constructor(agent: AgentApi) {
    this.#agent = agent;
  }

  health(): Promise<RuntimeHealth> {
    return this.#agent.health();
  }
  apply(spec: RuntimeSpec): Promise<AgentAppState> {
    return this.#agent.putApp(toAgentSpec(spec));
  }
  get(app: string): Promise<AgentAppState | null> {
    return this.#agent.getApp(app);
  }
  list(): Promise<AgentAppState[]> {
    return this.#agent.listApps();
  }
  async remove(app: string): Promise<void> {
    try {
      await this.#agent.deleteApp(app);
    } catch (err) {
      if (isMinipaasError(err) && err.status === 404) return;
      throw err;
    }
  }
  async metrics(app: string): Promise<AgentAppMetrics | null> {
    return this.#agent.metrics ? this.#agent.metrics(app) : null;
  }
  restart(app: string): Promise<AgentAppState> {
    return this.#agent.restartApp(app);
  }
  async logs(app: string, q: LogQuery): Promise<LogLine[]> {
    try {
      return await this.#agent.logs(app, {
        ...(q.tail !== undefined ? { tail: q.tail } : {}),
        ...(q.process ? { process: q.process } : {}),
      });
    } catch (err) {
      if (isMinipaasError(err) && err.status === 404) return [];
      throw err;
    }
  }
  followLogs(app: string, q: LogQuery): AsyncIterable<LogLine> {
    return this.#agent.followLogs(app, {
      ...(q.tail !== undefined ? { tail: q.tail } : {}),
      ...(q.process ? { process: q.process } : {}),
      ...(q.signal ? { signal: q.signal } : {}),
    });
  }
  /**
   * The app's state now and after every change, from the agent's watch stream, until `signal` aborts.
   * Ends at once (nothing yielded) when the agent does not run the app, so callers fall back to polling.
   */
  async *watch(app: string, opts: { signal: AbortSignal }): AsyncIterable<AgentAppState> {
    try {
      yield* this.#agent.watchApp(app, { signal: opts.signal });
    } catch (err) {
      if (isMinipaasError(err) && err.status === 404) return;
      throw err;
    }
  }
}

/** Maps the runtime-neutral spec onto the node agent's: the artifact must be a release directory. */
export function toAgentSpec(spec: RuntimeSpec): AppSpec {
  if (spec.artifact.kind !== 'directory') {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `the process runtime runs release directories, not images (${spec.artifact.ref}): use the docker runtime`,
    );
  }
  const { artifact, volumes, resources, domains: _d, ...rest } = spec;
  const out: AppSpec = { ...rest, dir: artifact.path };
  // Processes run on the host: a volume is its host directory, exported as MINIPAAS_VOLUME_<NAME>.
  if (volumes && volumes.length > 0)
    out.volumes = volumes.map((v) => ({
      name: v.name,
      dir: v.hostPath,
      target: v.target,
      ...(v.readOnly ? { readOnly: true } : {}),
    }));
  if (resources && (resources.memoryMb !== undefined || resources.cpuMillicores !== undefined))
    out.resources = {
      ...(resources.memoryMb !== undefined ? { memoryMb: resources.memoryMb } : {}),
      ...(resources.cpuMillicores !== undefined ? { cpuMillicores: resources.cpuMillicores } : {}),
    };
  return out;
}
