/**
 * Dedicated Postgres add-ons (docs/addons.md): one PostgreSQL cluster per add-on, under
 * `MINIPAAS_HOME/addons/<database>/` (data, socket directory and 0600 superuser password in
 * `postgres/`, server log in `logs/postgres.log`), listening on 127.0.0.1 at a port of
 * `postgres.dedicatedPortMin..dedicatedPortMax`, run as the embedded server's unprivileged user.
 *
 * minipaasd owns these servers but does not supervise them as children: each is started detached (its
 * own session) so it outlives a minipaasd restart. A small watcher adopts the running ones (their
 * `postmaster.pid`) and starts again any that is not running, with a backoff when a start fails.
 * `minipaas down` stops them (packages/cli/src/teardown.ts).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { MinipaasError } from '@minipaas/core';
import { type EmbeddedPostgres, type EmbeddedPostgresSettings, embeddedPostgres } from '@minipaas/postgres';
import type { Logger } from 'pino';

/** Longest unix socket path (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

/** A dedicated add-on server as the add-ons table records it. */
export interface DedicatedServerRef {
  /** The add-on's database name, also the name of its directory under `MINIPAAS_HOME/addons`. */
  database: string;
  port: number;
}

/** Options of {@link DedicatedPostgres}. */
export interface DedicatedPostgresOptions {
  /** MINIPAAS_HOME; the servers live in `<home>/addons/<database>/`. */
  home: string;
  /** The `postgres` config section: binaries, the server's OS user when root, and the port range. */
  postgres: Pick<EmbeddedPostgresSettings, 'binDir' | 'user'> & {
    dedicatedPortMin: number;
    dedicatedPortMax: number;
  };
  /** The dedicated add-ons that should be running (from the add-ons table). */
  list: () => Promise<DedicatedServerRef[]>;
  log: Logger;
  /** How often the watcher checks that every server runs (default 2000 ms). */
  checkIntervalMs?: number;
  /** Tests only: no fsync (see `EmbeddedPostgresOptions.unsafeNoSync`). */
  unsafeNoSync?: boolean;
}

/** Names that may become a directory under `addons/` (the add-on database names). */
const DIR_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** True when nothing listens on 127.0.0.1:`port` (binding it succeeds). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export class DedicatedPostgres {
  readonly #o: DedicatedPostgresOptions;
  readonly #root: string;
  /** Databases being created or destroyed: the watcher leaves them alone. */
  readonly #busy = new Set<string>();
  /** Ports handed out by `allocatePort` and not yet recorded in the table. */
  readonly #reserved = new Set<number>();
  readonly #failures = new Map<string, { count: number; next: number }>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(opts: DedicatedPostgresOptions) {
    this.#o = opts;
    this.#root = join(opts.home, 'addons');
  }

  /** `<home>/addons/<database>`. */
  dir(database: string): string {
    if (!DIR_RE.test(database)) throw new Error(`invalid dedicated add-on name: ${database.slice(0, 70)}`);
    return join(this.#root, database);
  }

  /** The embedded-server handle of one dedicated add-on. */
  server(ref: DedicatedServerRef): EmbeddedPostgres {
    const home = this.dir(ref.database);
    const socket = join(home, 'postgres', 'socket', `.s.PGSQL.${ref.port}`);
    return embeddedPostgres({
      home,
      config: {
        port: ref.port,
        binDir: this.#o.postgres.binDir,
        user: this.#o.postgres.user ?? 'minipaas-pg',
      },
      ...(this.#o.unsafeNoSync ? { unsafeNoSync: true } : {}),
      // A socket path longer than the kernel takes would stop the server: TCP only then.
      ...(Buffer.byteLength(socket) > MAX_SOCKET_PATH ? { settings: { unix_socket_directories: '' } } : {}),
    });
  }

  /** Superuser URL of the add-on's server over TCP (database `postgres`). */
  adminUrl(ref: DedicatedServerRef): string {
    return this.server(ref).superuserTcpUrl('postgres');
  }

  /** A free port of the range that no add-on in `used` has; reserved until `release` or `destroy`. */
  async allocatePort(used: ReadonlySet<number>): Promise<number> {
    const { dedicatedPortMin: min, dedicatedPortMax: max } = this.#o.postgres;
    for (let p = min; p <= max; p++) {
      if (used.has(p) || this.#reserved.has(p)) continue;
      this.#reserved.add(p);
      if (await portFree(p)) return p;
      this.#reserved.delete(p);
    }
    throw new MinipaasError(
      'MINIPAAS_ERR_LIMIT_EXCEEDED',
      `no free port for a dedicated Postgres server in ${min}-${max}: widen postgres.dedicatedPortMin/Max (MINIPAAS_DEDICATED_PG_PORT_MIN/_MAX) or destroy a dedicated add-on`,
    );
  }

  /** Forgets a reservation of `allocatePort` (the port is now in the table, or was not used). */
  release(port: number): void {
    this.#reserved.delete(port);
  }

  /**
   * Creates the add-on's cluster and starts it; resolves with its superuser URL. Refuses when its
   * directory exists. On failure the server is stopped and the directory removed again.
   */
  async create(ref: DedicatedServerRef): Promise<string> {
    const dir = this.dir(ref.database);
    this.#busy.add(ref.database);
    try {
      mkdirSync(this.#root, { recursive: true, mode: 0o711 });
      chmodSync(this.#root, 0o711);
      // The server's user (when the platform is root) must traverse MINIPAAS_HOME to its directory.
      if (process.getuid?.() === 0) {
        const home = statSync(this.#o.home);
        if ((home.mode & 0o001) === 0) chmodSync(this.#o.home, (home.mode & 0o7777) | 0o011);
      }
      mkdirSync(dir, { mode: 0o711 });
      const server = this.server(ref);
      try {
        await server.init();
        await server.start({ timeoutMs: 120_000 });
        return server.superuserTcpUrl('postgres');
      } catch (err) {
        await this.#removeServer(ref);
        throw err;
      }
    } finally {
      this.#busy.delete(ref.database);
    }
  }

  /** Stops the add-on's server (fast shutdown) and deletes its directory. */
  async destroy(ref: DedicatedServerRef): Promise<void> {
    this.#busy.add(ref.database);
    try {
      await this.#ticking; // a check that started before must not start it again
      await this.#removeServer(ref);
      this.#failures.delete(ref.database);
      this.#reserved.delete(ref.port);
    } finally {
      this.#busy.delete(ref.database);
    }
  }

  async #removeServer(ref: DedicatedServerRef): Promise<void> {
    const server = this.server(ref);
    if (server.running()) await server.stop();
    await rm(this.dir(ref.database), { recursive: true, force: true });
  }

  /** Starts the watcher: adopts or starts every dedicated server now, then checks every interval. */
  start(): void {
    if (this.#timer || this.#closed) return;
    const tick = () => {
      this.#ticking = this.#ticking.then(() => this.check());
    };
    tick();
    this.#timer = setInterval(tick, this.#o.checkIntervalMs ?? 2000);
    this.#timer.unref();
  }

  /**
   * One pass of the watcher: every recorded server that is not running (and whose cluster exists) is
   * started. A failed start is logged and retried with a growing delay (up to a minute).
   */
  async check(): Promise<void> {
    let refs: DedicatedServerRef[];
    try {
      refs = await this.#o.list();
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, 'cannot list the dedicated Postgres add-ons');
      return;
    }
    for (const ref of refs) {
      if (this.#closed) return;
      if (this.#busy.has(ref.database)) continue;
      const server = this.server(ref);
      try {
        if (server.running() || !server.initialized()) continue;
      } catch (err) {
        this.#o.log.error(
          { err: (err as Error).message, database: ref.database },
          'dedicated Postgres: bad state',
        );
        continue;
      }
      const failed = this.#failures.get(ref.database);
      if (failed && Date.now() < failed.next) continue;
      try {
        const pid = await server.start({ timeoutMs: 60_000 });
        this.#failures.delete(ref.database);
        this.#o.log.warn(
          { database: ref.database, port: ref.port, pid },
          'dedicated Postgres server started',
        );
      } catch (err) {
        const count = (failed?.count ?? 0) + 1;
        this.#failures.set(ref.database, { count, next: Date.now() + Math.min(60_000, 1000 * 2 ** count) });
        this.#o.log.error(
          { err: (err as Error).message, database: ref.database, attempt: count },
          'dedicated Postgres server did not start; retrying',
        );
      }
    }
  }

  /** Stops the watcher (the servers keep running: they outlive minipaasd). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
  }

  /** Pids of the running postmasters under `<home>/addons/` (for tests and diagnostics). */
  runningPids(): Map<string, number> {
    const out = new Map<string, number>();
    if (!existsSync(this.#root)) return out;
    for (const name of readdirSync(this.#root)) {
      if (!DIR_RE.test(name)) continue;
      const pid = this.server({ database: name, port: 0 }).postmasterPid();
      if (pid !== undefined) out.set(name, pid);
    }
    return out;
  }
}
