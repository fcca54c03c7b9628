/**
 * The runtime-neutral contract between the deploy pipeline and a runtime driver (process, docker, swarm).
 *
 * The pipeline builds an {@link Artifact}, describes the desired state of an app as a {@link RuntimeSpec}
 * and reads back {@link RuntimeAppState}. Nothing here is specific to one runtime: a driver maps the
 * spec onto its own protocol (the process driver onto the node agent's `AppSpec`), and may leave out what
 * it cannot observe (a container has no host pid; a swarm task has a node instead of a port).
 */
import type {
  AppUser,
  HealthcheckSpec,
  InstanceStatus,
  LogLine,
  ProcessSpec,
  RolloutStatus,
} from './agent-protocol.ts';

/** What a build produced: a release directory (process runtime) or an image reference (docker, swarm). */
export type Artifact = { kind: 'directory'; path: string } | { kind: 'image'; ref: string };

/** A named persistent volume mounted into every instance of an app. */
export interface VolumeMount {
  /** Volume name, unique per app. */
  name: string;
  /** Absolute mount path inside the instance. */
  target: string;
  readOnly?: boolean;
}

/** Per-instance resource limits; a driver applies what its runtime supports. */
export interface ResourceLimits {
  /** Memory limit in MiB. */
  memoryMb?: number;
  /** CPU limit in cores (0.5 = half a core). */
  cpus?: number;
  /** Maximum number of processes/threads. */
  pids?: number;
}

/** Desired state of one app, for any runtime. */
export interface RuntimeSpec {
  name: string;
  /** Identity of what runs (e.g. `v3`). A change of release, env or command rolls instances. */
  release: string;
  artifact: Artifact;
  /** Environment of every instance (the runtime adds PORT for web, and MINIPAAS_* metadata). */
  env: Record<string, string>;
  /** Process types; `web` instances are routed. */
  processes: Record<string, ProcessSpec>;
  healthcheck?: HealthcheckSpec;
  /** Values masked as `********` in captured logs (secrets). */
  maskValues?: string[];
  /** The app's own unprivileged OS identity (runtimes that run processes on the host). */
  user?: AppUser;
  volumes?: VolumeMount[];
  resources?: ResourceLimits;
  /** Host names routed to the app's web instances besides the platform's default one. */
  domains?: string[];
}

/** One running (or failed) instance, as every runtime reports it. */
export interface RuntimeInstance {
  id: string;
  processType: string;
  release: string;
  status: InstanceStatus;
  /** Restarts since this instance was created. */
  restarts: number;
  startedAt: string | null;
  /** Host pid, where the runtime has one. */
  pid?: number | null;
  /** Port the instance listens on, where the runtime routes by port. */
  port?: number | null;
  /** Node the instance runs on (multi-node runtimes). */
  node?: string;
  lastExitCode?: number | null;
  /** Present when status is `failed` or `crashed`: why, in one line. */
  error?: string;
}

/** Observed state of one app. */
export interface RuntimeAppState {
  name: string;
  /** Opaque digest of the desired spec the runtime holds; absent when the runtime keeps none. */
  specDigest?: string;
  /** The release currently serving (null before the first successful rollout). */
  release: string | null;
  /** The latest rollout the runtime was asked for. */
  rollout: {
    release: string;
    status: RolloutStatus;
    /** Reason when failed. */
    error?: string;
    /** Last log lines of the failing instances when failed. */
    logTail?: string[];
    updatedAt: string;
  };
  instances: RuntimeInstance[];
}

/** Health of a runtime (its agent, daemon or manager). */
export interface RuntimeHealth {
  ok: boolean;
  version: string;
  apps: number;
  instances: number;
  /** Process id of the runtime's own daemon, where there is one. */
  pid?: number;
  startedAt?: string;
  /** The runtime's HTTP router, where it has its own. */
  router?: { host: string; port: number };
}

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
 * What the control plane needs from a runtime. Every method is idempotent: applying the same spec
 * twice changes nothing. Errors are `MinipaasError`s (a 4xx from the runtime keeps its code).
 */
export interface RuntimeDriver {
  /** The `runtime` value of the apps this driver runs (`process`, `docker`, `swarm`). */
  readonly name: string;
  health(): Promise<RuntimeHealth>;
  apply(spec: RuntimeSpec): Promise<RuntimeAppState>;
  get(app: string): Promise<RuntimeAppState | null>;
  list(): Promise<RuntimeAppState[]>;
  remove(app: string): Promise<void>;
  restart(app: string): Promise<RuntimeAppState>;
  logs(app: string, q: LogQuery): Promise<LogLine[]>;
  followLogs(app: string, q: LogQuery): AsyncIterable<LogLine>;
  /**
   * The app's state now and after every change, until `signal` aborts. Optional: the pipeline polls
   * {@link RuntimeDriver.get} for drivers without it.
   */
  watch?(app: string, opts: { signal: AbortSignal }): AsyncIterable<RuntimeAppState>;
}
