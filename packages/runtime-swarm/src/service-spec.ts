/**
 * The Swarm service of one process type of a platform app, as a pure function of the app's
 * {@link RuntimeSpec}: replicas, a start-first update gated on the container health check with automatic
 * rollback, restart policy, resource limits, Docker secrets for the secret env vars (read into the
 * environment by a shell prefix, so their values never appear in the service spec), placement
 * constraints, host-mode publishing of the web port, and the `minipaas.app/release/process` labels.
 */
import { createHash } from 'node:crypto';
import type { RuntimeSpec } from '@minipaas/core';

/** Port web tasks listen on inside their container (their `PORT`), published in host mode. */
export const SWARM_WEB_PORT = 5000;

/** The command of a process type that runs the image's own `CMD`/`ENTRYPOINT` (as in the docker runtime). */
export const IMAGE_CMD = '(image CMD)';

export const SWARM_LABEL = {
  app: 'minipaas.app',
  release: 'minipaas.release',
  process: 'minipaas.process',
  digest: 'minipaas.digest',
  /** Marks services and secrets the swarm runtime owns. */
  runtime: 'minipaas.runtime',
  /** On the service of an app.json cron job: its index (`1`, `2`, ...); its process label is `cron:N`. */
  cron: 'minipaas.cron',
  /** On web services: the app's own domains, comma separated (routed besides `APP.BASE_DOMAIN`). */
  domains: 'minipaas.domains',
} as const;

/** Service name of a process type: `minipaas-APP-TYPE`. */
export const serviceName = (app: string, type: string): string => `minipaas-${app}-${type}`;

/** Service name of app.json cron job N (1-based): `minipaas-APP--cron-N` (no process type starts with `-`). */
export const cronServiceName = (app: string, n: number): string => `minipaas-${app}--cron-${n}`;

/** Process label of app.json cron job N. */
export const cronProcess = (n: number): string => `cron:${n}`;

/** Env keys that can be exported by a POSIX shell (others stay plain env vars). */
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A Docker secret holding one secret env var: versioned by a hash of its value, like the toolkit's. */
export interface SecretRef {
  key: string;
  /** `minipaas-APP-KEY-HASH8` (lower case). */
  name: string;
  /** File name under /run/secrets. */
  file: string;
  value: string;
}

/** The env vars of `spec` whose values are secrets (masked), as versioned Docker secrets. */
export function secretRefs(spec: RuntimeSpec): SecretRef[] {
  const masked = new Set((spec.maskValues ?? []).filter((v) => v.length > 0));
  return Object.entries(spec.env)
    .filter(([k, v]) => masked.has(v) && SHELL_NAME.test(k))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => {
      const hash = createHash('sha256').update(value).digest('hex').slice(0, 8);
      const slug = key.toLowerCase().replace(/_/g, '-');
      return {
        key,
        value,
        name: `minipaas-${spec.name}-${slug}-${hash}`.slice(0, 64),
        file: `minipaas_${key}`,
      };
    });
}

/** Single-quotes a word for `/bin/sh`. */
export const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Options that are not part of the app's spec. */
export interface ServiceSpecOptions {
  /** Image reference the tasks run (in the private registry, so every node can pull it). */
  image: string;
  /** The image's ENTRYPOINT + CMD, needed only for a process that runs the image's command with secrets. */
  imageCommand?: string[];
  /** Overlay network of the platform's services. */
  network: string;
  /** Placement constraints of every service (e.g. `node.labels.pool==apps`). */
  constraints: string[];
  /** Docker secret ids by name (created before the service). */
  secretIds: Map<string, string>;
  /** Digest of the app's spec (a change rolls the tasks). */
  digest: string;
  /** SIGTERM → SIGKILL grace (ms). */
  stopGraceMs: number;
  /** How long Swarm watches a new task for failure before taking the next one (ms). */
  monitorMs: number;
}

const ns = (ms: number): number => Math.round(ms * 1_000_000);

/** The web health check: an HTTP GET of the health path on PORT with whichever client the image has. */
export function webHealthcheck(spec: RuntimeSpec): Record<string, unknown> {
  const first = spec.healthcheck?.checks?.find((c) => c.type !== 'liveness')?.path;
  const path = first ?? spec.healthcheck?.path ?? '/';
  const url = shellQuote(`http://127.0.0.1:${SWARM_WEB_PORT}${path.startsWith('/') ? path : `/${path}`}`);
  const test = [
    `if command -v wget >/dev/null 2>&1; then wget -q -O /dev/null ${url};`,
    `elif command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null ${url};`,
    `elif command -v node >/dev/null 2>&1; then node -e "fetch(process.argv[1]).then(r=>process.exit(r.status<400?0:1),()=>process.exit(1))" ${url};`,
    'else exit 0; fi',
  ].join(' ');
  const timeout = spec.healthcheck?.timeoutMs ?? 2000;
  return {
    Test: ['CMD-SHELL', test],
    Interval: ns(1000),
    Timeout: ns(timeout),
    Retries: 3,
    StartPeriod: ns(30_000),
  };
}

/** The container command: the process's shell line (or the image's command) behind the secret exports. */
export function containerCommand(
  command: string,
  secrets: readonly SecretRef[],
  imageCommand: readonly string[] | undefined,
): string[] | undefined {
  const prefix = secrets.map((s) => `${s.key}="$(cat /run/secrets/${s.file})"; export ${s.key}; `).join('');
  if (command !== IMAGE_CMD && command.trim()) return ['/bin/sh', '-c', `${prefix}${command}`];
  if (!prefix) return undefined;
  if (!imageCommand?.length) return undefined;
  return ['/bin/sh', '-c', `${prefix}exec "$@"`, 'sh', ...imageCommand];
}

const RESTART: Record<string, string> = { always: 'any', 'on-failure': 'on-failure', no: 'none' };

/** The Swarm service spec (Engine API `ServiceSpec`) of process type `type`. */
export function serviceSpec(spec: RuntimeSpec, type: string, o: ServiceSpecOptions): Record<string, unknown> {
  const proc = spec.processes[type];
  if (!proc) throw new Error(`no process type ${type}`);
  const web = type === 'web';
  const secrets = secretRefs(spec);
  const secretKeys = new Set(secrets.map((s) => s.key));
  const env: Record<string, string> = {
    ...Object.fromEntries(Object.entries(spec.env).filter(([k]) => !secretKeys.has(k))),
    MINIPAAS_APP: spec.name,
    MINIPAAS_RELEASE: spec.release,
    MINIPAAS_PROCESS: type,
    ...(web ? { PORT: String(SWARM_WEB_PORT) } : {}),
  };
  const labels = {
    [SWARM_LABEL.app]: spec.name,
    [SWARM_LABEL.release]: spec.release,
    [SWARM_LABEL.process]: type,
    [SWARM_LABEL.digest]: o.digest,
    [SWARM_LABEL.runtime]: 'swarm',
    ...(web && spec.domains?.length ? { [SWARM_LABEL.domains]: spec.domains.join(',') } : {}),
  };
  const r = spec.resources;
  const command = containerCommand(proc.command, secrets, o.imageCommand);
  const limits = {
    ...(r?.memoryMb ? { MemoryBytes: r.memoryMb * 1024 * 1024 } : {}),
    ...(r?.cpuMillicores ? { NanoCPUs: r.cpuMillicores * 1_000_000 } : {}),
    ...(r?.pids ? { Pids: r.pids } : {}),
  };
  const update = {
    Parallelism: 1,
    Delay: 0,
    FailureAction: 'rollback',
    Monitor: ns(o.monitorMs),
    MaxFailureRatio: 0,
    Order: 'start-first',
  };
  return {
    Name: serviceName(spec.name, type),
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: o.image,
        ...(command ? { Command: command } : {}),
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Labels: labels,
        StopGracePeriod: ns(o.stopGraceMs),
        ...(web ? { Healthcheck: webHealthcheck(spec) } : {}),
        Secrets: secrets.map((s) => ({
          SecretID: o.secretIds.get(s.name),
          SecretName: s.name,
          File: { Name: s.file, UID: '0', GID: '0', Mode: 0o444 },
        })),
      },
      Resources: Object.keys(limits).length ? { Limits: limits } : {},
      RestartPolicy: {
        Condition: RESTART[spec.restart ?? 'always'] ?? 'any',
        Delay: ns(1000),
        MaxAttempts: 0,
      },
      Placement: { Constraints: o.constraints },
      Networks: [{ Target: o.network }],
      LogDriver: { Name: 'json-file', Options: { 'max-size': '10m', 'max-file': '3' } },
    },
    Mode: { Replicated: { Replicas: proc.instances } },
    UpdateConfig: update,
    RollbackConfig: { ...update, FailureAction: 'pause' },
    EndpointSpec: web
      ? { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: SWARM_WEB_PORT, PublishMode: 'host' }] }
      : { Mode: 'vip' },
  };
}

/**
 * The service of app.json cron job `n` (1-based): no task until minipaasd's scheduler runs it, by
 * swarm-cronjob's labels (schedule, skip-running, one replica per run); restart policy `none`, so a run
 * ends when its command exits.
 */
export function cronServiceSpec(
  spec: RuntimeSpec,
  n: number,
  o: Omit<ServiceSpecOptions, 'imageCommand'>,
): Record<string, unknown> {
  const job = spec.cron?.[n - 1];
  if (!job) throw new Error(`no cron job ${n}`);
  const type = cronProcess(n);
  const processes = { [type]: { command: job.command, instances: 0 } };
  const base = serviceSpec({ ...spec, processes }, type, o) as {
    Labels: Record<string, string>;
    TaskTemplate: Record<string, unknown> & { ContainerSpec: Record<string, unknown> };
  };
  const labels = {
    ...base.Labels,
    [SWARM_LABEL.cron]: String(n),
    'swarm.cronjob.enable': 'true',
    'swarm.cronjob.schedule': job.schedule,
    'swarm.cronjob.skip-running': 'true',
    'swarm.cronjob.replicas': '1',
  };
  return {
    ...base,
    Name: cronServiceName(spec.name, n),
    Labels: labels,
    TaskTemplate: {
      ...base.TaskTemplate,
      ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Labels: labels },
      RestartPolicy: { Condition: 'none' },
    },
    Mode: { Replicated: { Replicas: 0 } },
    // A run that exits is done, not a failed update: nothing to roll back.
    UpdateConfig: { Parallelism: 1, Delay: 0, FailureAction: 'continue', Order: 'stop-first' },
    RollbackConfig: undefined,
  };
}
