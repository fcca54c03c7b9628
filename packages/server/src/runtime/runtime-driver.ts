import type { AgentAppState, AgentHealth, AppSpec, LogLine } from '@minipaas/core';

/** Options for reading app logs. */
export interface LogQuery {
  /** Number of most recent lines. */
  tail?: number;
  /** Only this process type. */
  process?: string | undefined;
  /** Aborts a follow stream. */
  signal?: AbortSignal;
}

/**
 * What the control plane needs from a runtime (process agent today; docker and swarm later).
 * Every method is idempotent: applying the same spec twice changes nothing.
 */
export interface RuntimeDriver {
  readonly name: string;
  health(): Promise<AgentHealth>;
  apply(spec: AppSpec): Promise<AgentAppState>;
  get(app: string): Promise<AgentAppState | null>;
  list(): Promise<AgentAppState[]>;
  remove(app: string): Promise<void>;
  restart(app: string): Promise<AgentAppState>;
  logs(app: string, q: LogQuery): Promise<LogLine[]>;
  followLogs(app: string, q: LogQuery): AsyncIterable<LogLine>;
}
