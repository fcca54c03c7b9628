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

/**
 * A persistent volume of the app's project mounted into every instance of an app (docs/volumes.md).
 * Both runtimes share one file layout: the data lives in {@link VolumeMount.hostPath}
 * (`MINIPAAS_HOME/volumes/{project}/{volume id}`), which the platform's file API reads and writes.
 */
export interface VolumeMount {
  /** The volume's id in the platform database. */
  id: string;
  /** Id of the project the volume belongs to. */
  project: string;
  /**
   * Runtime-neutral volume name, unique per project (`[a-z0-9][a-z0-9-]*`). The process runtime exports the
   * data directory as `MINIPAAS_VOLUME_<NAME>` (upper case, `-` → `_`).
   */
  name: string;
  /** Absolute mount path inside the instance (default `/app/storage`). */
  target: string;
  /**
   * Absolute host directory holding the volume's data. The process runtime hands it to the app directly
   * (owned by the app's uid); the docker runtime creates the named volume {@link dockerVolumeName} with the
   * `local` driver bound to this directory (`type=none,o=bind,device=hostPath`) and mounts it at `target`.
   */
  hostPath: string;
  readOnly?: boolean;
}

/** Docker named volume of a platform volume: `minipaas-vol-{project}-{volume id}` (seed 001 §1.2). */
export function dockerVolumeName(v: Pick<VolumeMount, 'project' | 'id'>): string {
  return `minipaas-vol-${v.project}-${v.id}`;
}

/**
 * Per-instance resource limits; every driver applies both or reports them `unsupported`
 * ({@link LimitsEnforcement}), never silently ignores them. Defaults come from `resources.defaultMemoryMB`
 * and `resources.defaultCpuMillicores`, overridden per app.
 */
export interface ResourceLimits {
  /** Memory limit in MiB (docker `HostConfig.Memory`; cgroup `memory.limit_in_bytes` / `memory.max`). */
  memoryMb?: number;
  /** CPU limit in millicores, 1000 = one core (docker `HostConfig.NanoCpus` = m × 10⁶; cgroup CFS quota). */
  cpuMillicores?: number;
  /** Maximum number of processes/threads. */
  pids?: number;
}

/**
 * What happens when an instance's process exits on its own (Docker restart-policy names). `always`
 * (default): restarted with backoff, crash loops end in `failed`; `on-failure`: restarted only after a
 * non-zero exit, a signal or an OOM kill, a clean exit leaves it `stopped`; `no`: never restarted.
 */
export type RestartPolicyName = 'always' | 'on-failure' | 'no';

/** How a runtime applied an instance's {@link ResourceLimits}. */
export interface LimitsEnforcement {
  /** `cgroup-v1`/`cgroup-v2` (process runtime as root), `docker`, or `unsupported`. */
  mode: 'cgroup-v1' | 'cgroup-v2' | 'docker' | 'unsupported';
  memoryMb?: number;
  cpuMillicores?: number;
  /** Why the limits are not enforced (mode `unsupported`). */
  reason?: string;
}

/** One CPU/memory sample of an instance. */
export interface UsageSample {
  /** ISO time of the sample. */
  ts: string;
  /** CPU used since the previous sample in millicores (1000 = one core busy). */
  cpuMillicores: number;
  /** Memory in use (cgroup usage, or RSS without cgroups), bytes. */
  memoryBytes: number;
}

/** The recent samples of one instance, oldest first (a short history for graphs). */
export interface InstanceMetrics {
  instance: string;
  processType: string;
  status: InstanceStatus;
  limits?: LimitsEnforcement;
  samples: UsageSample[];
}

/** Metrics of one app: one entry per current instance. */
export interface AppMetrics {
  app: string;
  /** Interval between samples in ms. */
  intervalMs: number;
  instances: InstanceMetrics[];
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
  /** Restart policy of the app's instances (default `always`). */
  restart?: RestartPolicyName;
  /** Host names routed to the app's web instances besides the platform's default one. */
  domains?: string[];
  /**
   * app.json `cron` jobs: a command of the release run on a schedule (5 cron fields, or 6 with seconds
   * first, or `@daily`...). The swarm runtime runs each as a scheduled service; the process and docker
   * runtimes do not run them (docs/swarm.md).
   */
  cron?: CronJobSpec[];
}

/** One scheduled command of an app. */
export interface CronJobSpec {
  command: string;
  schedule: string;
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
  /** Present when status is `failed`, `crashed` or `oom-killed`: why, in one line. */
  error?: string;
  /** How the resource limits are applied to this instance. */
  limits?: LimitsEnforcement;
  /** The latest CPU/memory sample. */
  usage?: UsageSample;
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
  /** Recent CPU/memory samples of the app's instances (null when the runtime does not run the app). */
  metrics?(app: string): Promise<AppMetrics | null>;
}
