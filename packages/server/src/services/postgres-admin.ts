/**
 * Administration of app databases on a Postgres server: one database and one LOGIN role per add-on,
 * the role owning its database, CONNECT revoked from PUBLIC. Every identifier goes through
 * `quoteIdent` and every literal through `quoteLiteral`; names are also checked against
 * `PG_NAME_RE` before they get here, so quoting is a second wall, not the only one.
 */
import pg from 'pg';

/** What an add-on database or role name may look like (lowercase, starts with a letter, ≤ 63 bytes). */
export const PG_NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** A double-quoted SQL identifier (`"a""b"`). Refuses NUL and names longer than Postgres keeps. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\0') || Buffer.byteLength(name) > 63)
    throw new Error(`invalid SQL identifier: ${JSON.stringify(name.slice(0, 70))}`);
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * A single-quoted SQL string literal. Backslashes are doubled and the `E''` form used when present,
 * so the result is the same string whatever `standard_conforming_strings` says. Refuses NUL.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('invalid SQL literal: contains NUL');
  const body = value.replaceAll("'", "''");
  return value.includes('\\') ? `E'${body.replaceAll('\\', '\\\\')}'` : `'${body}'`;
}

/** Where apps reach the server: the admin URL's host and port (a socket directory when host is a path). */
export interface ServerAddress {
  host: string;
  port: number;
  /** True when `host` is a unix socket directory. */
  socket: boolean;
}

/**
 * Parses a libpq URL. `postgres://user@/db?host=/dir` (no host, a socket directory in the query) is
 * valid for libpq but not for WHATWG URL: it is read as host `localhost` with the query kept.
 */
export function parsePgUrl(url: string): URL {
  try {
    return new URL(url);
  } catch (err) {
    const fixed = url.replace(/^(postgres(?:ql)?:\/\/[^/?#]*@)(?=[/?#]|$)/, '$1localhost');
    if (fixed === url) throw err;
    return new URL(fixed);
  }
}

/** The address in a libpq URL (`postgres://u:p@host:port/db` or `postgres:///db?host=/dir`). */
export function serverAddress(url: string): ServerAddress {
  const u = parsePgUrl(url);
  const hostParam = u.searchParams.get('host');
  const port = Number(u.port || u.searchParams.get('port') || 5432);
  if (hostParam?.startsWith('/')) return { host: hostParam, port, socket: true };
  const host = decodeURIComponent(u.hostname).replace(/^\[|\]$/g, '');
  if (!host || host.startsWith('/')) return { host: host || '/var/run/postgresql', port, socket: true };
  return { host: host === 'localhost' ? '127.0.0.1' : host, port, socket: false };
}

/** A connection URL for `role` to `database` at `addr` (a unix socket directory goes in `?host=`). */
export function connectionUrl(addr: ServerAddress, role: string, password: string, database: string): string {
  const auth = `${encodeURIComponent(role)}:${encodeURIComponent(password)}`;
  const db = encodeURIComponent(database);
  if (addr.socket)
    return `postgres://${auth}@localhost:${addr.port}/${db}?host=${encodeURIComponent(addr.host)}`;
  const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return `postgres://${auth}@${host}:${addr.port}/${db}`;
}

/** `url` with its password replaced by asterisks (for display). */
export function maskUrl(url: string): string {
  const u = parsePgUrl(url);
  if (u.password) u.password = '********';
  return u.toString();
}

/** `adminUrl` pointed at another database on the same server. */
export function withDatabase(adminUrl: string, database: string): string {
  const u = parsePgUrl(adminUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  // A server-side termination of an idle client must not become an uncaught 'error' event.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface AppDatabase {
  database: string;
  role: string;
  password: string;
}

/** Creates/drops app databases through a superuser (or CREATEDB + CREATEROLE) connection. */
export class PostgresAdmin {
  readonly adminUrl: string;

  constructor(adminUrl: string) {
    this.adminUrl = adminUrl;
  }

  /** True when a database or a role of that name already exists. */
  async exists(name: string): Promise<boolean> {
    return withClient(this.adminUrl, async (c) => {
      const r = await c.query(
        'SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname = $1) AS n',
        [name],
      );
      return Number((r.rows[0] as { n: string }).n) > 0;
    });
  }

  /**
   * Creates the role (LOGIN, no other attribute) and its database, owned by it, with CONNECT and
   * TEMPORARY revoked from PUBLIC, and the public schema owned by the role. On any failure what was
   * created is dropped again.
   */
  async create(d: AppDatabase): Promise<void> {
    if (!PG_NAME_RE.test(d.database) || !PG_NAME_RE.test(d.role))
      throw new Error('database and role names must match PG_NAME_RE');
    const db = quoteIdent(d.database);
    const role = quoteIdent(d.role);
    try {
      await withClient(this.adminUrl, async (c) => {
        await c.query(
          `CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD ${quoteLiteral(d.password)}`,
        );
        // CREATE DATABASE ... OWNER needs the admin to be able to SET ROLE to the owner (superuser, or
        // a member of it): grant membership when the admin is not a superuser.
        const su = await c.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
        if (!(su.rows[0] as { rolsuper: boolean } | undefined)?.rolsuper)
          await c.query(`GRANT ${role} TO current_user`);
        await c.query(`CREATE DATABASE ${db} OWNER ${role} TEMPLATE template0 ENCODING 'UTF8'`);
        await c.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
        await c.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${db} TO ${role}`);
      });
      await withClient(withDatabase(this.adminUrl, d.database), async (c) => {
        await c.query(`ALTER SCHEMA public OWNER TO ${role}`);
        await c.query('REVOKE ALL ON SCHEMA public FROM PUBLIC');
        await c.query(`GRANT ALL ON SCHEMA public TO ${role}`);
      });
    } catch (err) {
      await this.drop(d).catch((cleanup: Error) => {
        throw new AggregateError(
          [err, cleanup],
          `creating database ${d.database} failed, and so did cleaning up`,
        );
      });
      throw err;
    }
  }

  /** Ends every session on the database, then drops it and its role (both may already be gone). */
  async drop(d: Pick<AppDatabase, 'database' | 'role'>): Promise<void> {
    const db = quoteIdent(d.database);
    const role = quoteIdent(d.role);
    await withClient(this.adminUrl, async (c) => {
      await c.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [d.database],
      );
      await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await c.query(`DROP ROLE IF EXISTS ${role}`);
    });
  }

  /** Ends every session on the database (before a restore). */
  async terminate(database: string): Promise<void> {
    await withClient(this.adminUrl, async (c) => {
      await c.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [database],
      );
    });
  }

  /** Names of the databases that exist among `names`. */
  async existingDatabases(names: readonly string[]): Promise<string[]> {
    return withClient(this.adminUrl, async (c) => {
      const r = await c.query('SELECT datname FROM pg_database WHERE datname = ANY($1::text[])', [names]);
      return r.rows.map((x: { datname: string }) => x.datname);
    });
  }
}
