import { createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { appNameSchema, ENV_NAME_RE, PROCESS_TYPE_RE } from './names.ts';
import type { LimitsEnforcement, UsageSample } from './runtime.ts';

/**
 * The contract between the control plane and the node agent (process runtime).
 *
 * Transport: HTTP/1.1 + JSON over the unix socket `homePaths(home).agentSocket` (mode 0600).
 * The agent is long-lived and owns app processes and the router; the control plane pushes the
 * desired state of each app and reads back the observed state. Every call is idempotent, so a
 * control plane that restarts simply pushes the same specs again and nothing is restarted.
 *
 * Idle cost: an identical PUT is a no-op that writes nothing and reads nothing from /proc. Every app state
 * carries `specDigest` ({@link appSpecDigest} of the desired spec the agent holds), so a control plane
 * resyncs with one `GET /v1/apps` and PUTs only the apps whose digest differs from the spec it would send.
 *
 * Routes (all JSON; errors are `ErrorBody` with a 4xx/5xx status):
 *   GET    /v1/health                      -> AgentHealth
 *   GET    /v1/apps                        -> AgentAppState[]
 *   GET    /v1/apps/:name                  -> AgentAppState            (404 if unknown)
 *   PUT    /v1/apps/:name     AppSpec      -> AgentAppState            (202; starts a rollout if the
 *                                                                       release or env/commands changed,
 *                                                                       only scales if counts changed,
 *                                                                       no-op if identical)
 *   DELETE /v1/apps/:name                  -> { stopped: number }      (stops all instances gracefully)
 *   POST   /v1/apps/:name/restart          -> AgentAppState            (rolling restart, same release)
 *   GET    /v1/apps/:name/watch            -> application/x-ndjson stream of AgentAppState: the current state
 *                                             at once, then one line per change, until the client disconnects
 *   GET    /v1/apps/:name/logs?tail=N&follow=1&since=ISO
 *                                          -> application/x-ndjson stream of LogLine; without follow the
 *                                             response ends after the last N lines (default 100)
 *   GET    /v1/apps/:name/metrics          -> AgentAppMetrics          (recent CPU/memory samples per instance)
 *   POST   /v1/shutdown                    -> { ok: true }             (stop all apps gracefully, then exit)
 */

/** One process type of an app as the agent should run it. */
export interface ProcessSpec {
  /**
   * Procfile command line, run with `/bin/sh -c` semantics (assignments, `&&` chains, `cd dir && …`, `$PORT`);
   * a simple command is `exec`ed so it is the instance's process (ADR 0003).
   */
  command: string;
  /** Desired number of instances (0 stops them all). */
  instances: number;
}

export interface HealthcheckSpec {
  /** HTTP path probed on web instances; when unset a TCP connect to the port is the check. */
  path?: string;
  /** Per-probe timeout. */
  timeoutMs?: number;
  /**
   * app.json checks (Dokku's `healthchecks.web[]`). When present they replace `path`: a new web instance
   * takes traffic only once every `startup` and `readiness` check passed; `liveness` checks keep running.
   */
  checks?: HttpCheck[];
}

/** One HTTP check of a web instance (Dokku app.json `healthchecks` entry, times in milliseconds). */
export interface HttpCheck {
  type: 'startup' | 'liveness' | 'readiness';
  /** Request path, e.g. `/health`. */
  path: string;
  /** The check passes only when the response body contains this text (and the status is 2xx/3xx). */
  content?: string;
  /** Tries before the check fails (Dokku default 5). */
  attempts?: number;
  /** Per-try timeout (Dokku default 5 s). */
  timeoutMs?: number;
  /** Pause between tries (Dokku default 5 s; the platform may probe sooner at first). */
  waitMs?: number;
  /** Delay before the first try. */
  initialDelayMs?: number;
}

/** Desired state of one app. */
export interface AppSpec {
  name: string;
  /** Identity of what runs (e.g. `v3`). A change of release, env or command rolls instances. */
  release: string;
  /** Absolute path of the release directory: the instances' working directory. */
  dir: string;
  /** Environment for every instance (the agent adds PORT for web, and MINIPAAS_* metadata). */
  env: Record<string, string>;
  /** Process types; `web` instances get a PORT and are routed. */
  processes: Record<string, ProcessSpec>;
  healthcheck?: HealthcheckSpec;
  /** Values masked as `********` in captured logs (secrets). */
  maskValues?: string[];
  /**
   * The app's own unprivileged OS identity. A root agent starts the app's instances as this user, gives it
   * `MINIPAAS_HOME/apps/<name>/{data,tmp}` as HOME/TMPDIR and locks the release to root:gid read-only.
   * Absent: the agent's single fallback user (`apps.user`), or no switch when the agent is not root.
   */
  user?: AppUser;
  /**
   * Persistent volumes: a root agent creates each `dir` owned by the app's uid (mode 0750) and exports it as
   * `MINIPAAS_VOLUME_<NAME>`; the data is never removed by the agent.
   */
  volumes?: AgentVolume[];
  /**
   * Per-instance limits. A root agent with cgroups puts each instance in a memory and cpu cgroup with these
   * limits; otherwise every instance reports `limits.mode: 'unsupported'` with the reason.
   */
  resources?: { memoryMb?: number; cpuMillicores?: number };
  /** What to do when an instance exits on its own (default `always`). */
  restart?: 'always' | 'on-failure' | 'no';
}

/** One volume of an app as the agent sees it: a host directory. */
export interface AgentVolume {
  /** Volume name (`[a-z0-9][a-z0-9-]*`): the variable is `MINIPAAS_VOLUME_` + upper case with `-` → `_`. */
  name: string;
  /** Absolute host directory of the data. */
  dir: string;
  /** Mount path the app asked for (informational for processes: it runs on the host). */
  target?: string;
  readOnly?: boolean;
}

/** An app's OS user: one uid and one gid of its own, from `apps.uidMin`..`apps.uidMax`. */
export interface AppUser {
  /** OS user and group name (`mp<uid>`). */
  name: string;
  uid: number;
  gid: number;
}

export type InstanceStatus =
  | 'pending'
  | 'starting'
  | 'running'
  | 'crashed'
  | 'restarting'
  | 'failed'
  | 'stopping'
  | 'stopped'
  /** The kernel's OOM killer ended the instance's process at its memory limit (it restarts per policy). */
  | 'oom-killed';

export interface InstanceInfo {
  /** Stable id, e.g. `hello-web-1a2b3c`. Used as the log file name. */
  id: string;
  app: string;
  processType: string;
  release: string;
  pid: number | null;
  port: number | null;
  status: InstanceStatus;
  /** Restarts since this instance was created. */
  restarts: number;
  lastExitCode: number | null;
  lastExitSignal: string | null;
  startedAt: string | null;
  createdAt: string;
  /** The cgroup directory the current process runs in; null between processes or without cgroups. */
  cgroup?: string | null;
  /** Present when status is `failed`, `crashed` or `oom-killed`: why, in one line. */
  error?: string;
  /** Times the OOM killer ended this instance's process. */
  oomKills?: number;
  /** How the app's resource limits apply to this instance. */
  limits?: LimitsEnforcement;
  /** Latest CPU/memory sample (every few seconds while the instance has a process). */
  usage?: UsageSample;
}

/** `GET /v1/apps/:name/metrics`: a short history of samples per current instance. */
export interface AgentAppMetrics {
  app: string;
  intervalMs: number;
  instances: {
    instance: string;
    processType: string;
    status: InstanceStatus;
    limits?: LimitsEnforcement;
    samples: UsageSample[];
  }[];
}

export type RolloutStatus = 'idle' | 'rolling' | 'ready' | 'failed';

export interface AgentAppState {
  name: string;
  /**
   * {@link appSpecDigest} of the desired spec the agent holds for this app (absent from runtimes that
   * keep no spec: the control plane then pushes every pass).
   */
  specDigest?: string;
  /** The release currently serving (null before the first successful rollout). */
  release: string | null;
  /** The latest rollout the agent was asked for. */
  rollout: {
    release: string;
    status: RolloutStatus;
    /** Reason when failed (e.g. "instance web exited with code 1 3 times within 10s"). */
    error?: string;
    /** Last log lines of the failing instances when failed. */
    logTail?: string[];
    updatedAt: string;
  };
  instances: InstanceInfo[];
}

export interface LogLine {
  /** ISO timestamp when the agent captured the line. */
  ts: string;
  instance: string;
  processType: string;
  stream: 'stdout' | 'stderr' | 'system';
  line: string;
}

export interface AgentHealth {
  ok: true;
  pid: number;
  version: string;
  startedAt: string;
  router: { host: string; port: number };
  apps: number;
  instances: number;
}

/** Deterministic JSON (object keys sorted, undefined members dropped), for comparing specs. */
export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Digest of an app spec (sha256 of its {@link stableStringify}): equal digests mean a PUT is a no-op. */
export function appSpecDigest(spec: AppSpec): string {
  return createHash('sha256').update(stableStringify(spec)).digest('base64url');
}

/** An app's uid or gid: unprivileged, never root nor a system id (below 1000); same bounds as `apps.uidMin`/`uidMax`. */
const appIdSchema = z.number().int().min(1000).max(4_000_000_000);

/** A volume name: lower case letters, digits and `-`, starting with a letter or digit, at most 63. */
export const VOLUME_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** The environment variable that carries a volume's host directory to a process instance. */
export function volumeEnvName(name: string): string {
  return `MINIPAAS_VOLUME_${name.toUpperCase().replace(/-/g, '_')}`;
}

/** Ten minutes: the upper bound of every check time. */
const MAX_CHECK_MS = 600_000;

/** zod schema of one app.json HTTP check ({@link HttpCheck}). */
export const httpCheckSchema = z.object({
  type: z.enum(['startup', 'liveness', 'readiness']),
  path: z.string().startsWith('/', 'path must start with /').max(2000),
  content: z.string().max(1024, 'content must be at most 1 KiB').optional(),
  attempts: z.number().int().min(1).max(100).optional(),
  timeoutMs: z.number().int().min(1).max(MAX_CHECK_MS).optional(),
  waitMs: z.number().int().min(0).max(MAX_CHECK_MS).optional(),
  initialDelayMs: z.number().int().min(0).max(MAX_CHECK_MS).optional(),
});

/** zod schema of {@link AppSpec}: the body of `PUT /v1/apps/:name`. The single copy (the agent validates with it). */
export const appSpecSchema = z.object({
  name: appNameSchema,
  release: z.string().min(1).max(200),
  dir: z.string().min(1).refine(isAbsolute, 'dir must be an absolute path'),
  env: z.record(z.string().regex(ENV_NAME_RE, 'invalid environment variable name'), z.string()).default({}),
  processes: z.record(
    z.string().regex(PROCESS_TYPE_RE, 'invalid process type'),
    z.object({ command: z.string().min(1).max(10_000), instances: z.number().int().min(0).max(100) }),
  ),
  healthcheck: z
    .object({
      path: z.string().startsWith('/').max(2000).optional(),
      timeoutMs: z.number().int().min(1).max(MAX_CHECK_MS).optional(),
      checks: z.array(httpCheckSchema).max(20).optional(),
    })
    .optional(),
  maskValues: z.array(z.string()).max(1000).optional(),
  user: z
    .object({
      name: z.string().regex(/^[a-z_][a-z0-9_-]{0,30}$/, 'invalid user name'),
      uid: appIdSchema,
      gid: appIdSchema,
    })
    .optional(),
  volumes: z
    .array(
      z.object({
        name: z.string().regex(VOLUME_NAME_RE, 'invalid volume name'),
        dir: z.string().min(1).max(4096).refine(isAbsolute, 'volume dir must be an absolute path'),
        target: z.string().max(4096).optional(),
        readOnly: z.boolean().optional(),
      }),
    )
    .max(20)
    .optional(),
  resources: z
    .object({
      memoryMb: z.number().int().min(4).max(1_048_576).optional(),
      cpuMillicores: z.number().int().min(10).max(1_024_000).optional(),
    })
    .optional(),
  restart: z.enum(['always', 'on-failure', 'no']).optional(),
});
