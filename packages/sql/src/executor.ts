/**
 * The tiny database interface the client needs, with adapters for a `pg` Pool (or Client) and PGlite.
 * Anything that can run a parameterised query can be adapted; LISTEN support is optional (workers
 * then rely on polling alone).
 */

/** Rows returned by {@link SqlExecutor.query}. */
export interface SqlResult<R> {
  rows: R[];
}

/** Stops a LISTEN subscription. */
export type Unlisten = () => Promise<void>;

/** Options for one query. */
export interface QueryOptions {
  /**
   * A stable statement name: adapters that support it (pg) prepare the statement once per
   * connection and reuse the plan. Only pass it for fixed query texts.
   */
  name?: string;
}

/** What `@minipaas/sql` needs from a database connection or pool. */
export interface SqlExecutor {
  /** Runs one statement with `$1`-style parameters. */
  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<SqlResult<R>>;
  /** Runs a multi-statement script (no parameters) as one implicit transaction. */
  exec(script: string): Promise<void>;
  /**
   * Subscribes to NOTIFY on `channel` (an already validated lowercase identifier). Optional: without
   * it, workers and subscriptions poll.
   */
  listen?(channel: string, onNotify: (payload: string) => void): Promise<Unlisten>;
}

// ---------------------------------------------------------------------------------------------------
// pg

/** The part of a `pg` notification message the adapter reads. */
interface PgNotification {
  channel: string;
  payload?: string | undefined;
}

/** The part of a `pg` PoolClient the adapter uses for LISTEN. */
export interface PgListenClientLike {
  query(text: string): Promise<unknown>;
  on(event: 'notification', cb: (msg: PgNotification) => void): unknown;
  on(event: 'error', cb: (err: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
  release(err?: Error | boolean): void;
}

/** The part of a `pg` Pool (or Client) the adapter uses. */
export interface PgPoolLike {
  query(config: { text: string; values?: unknown[]; name?: string }): Promise<{ rows: unknown[] }>;
  query(text: string): Promise<unknown>;
  /** Pools have `connect()` returning a client; LISTEN needs it. */
  connect?(): Promise<unknown>;
}

/** Options for {@link pgExecutor}. */
export interface PgExecutorOptions {
  /** Use named prepared statements for the client's fixed queries (default true). */
  prepare?: boolean;
  /** Delay before re-establishing a broken LISTEN connection, in ms (default 1000). */
  listenReconnectDelayMs?: number;
  /** Called when the LISTEN connection fails (it is re-established automatically). */
  onListenError?: (err: unknown) => void;
}

/**
 * Adapts a `pg` Pool (recommended) or Client. LISTEN takes one dedicated connection from the pool
 * for as long as any channel is listened to, and reconnects after errors (listeners are then called
 * with an empty payload so they re-check for work they might have missed).
 */
export function pgExecutor(pool: PgPoolLike, options: PgExecutorOptions = {}): SqlExecutor {
  const prepare = options.prepare ?? true;
  const reconnectDelay = options.listenReconnectDelayMs ?? 1000;
  const channels = new Map<string, Set<(payload: string) => void>>();
  let client: PgListenClientLike | null = null;
  /** channels the current LISTEN connection has subscribed to */
  let listened = new Set<string>();
  let connecting: Promise<PgListenClientLike> | null = null;
  let reconnectTimer: NodeJS.Timeout | null = null;

  const quote = (channel: string) => `"${channel.replaceAll('"', '""')}"`;

  const notifyAll = () => {
    for (const set of channels.values()) for (const cb of set) cb('');
  };

  const dropClient = (err?: Error) => {
    const c = client;
    client = null;
    if (c) {
      c.removeAllListeners('notification');
      c.removeAllListeners('error');
      c.on('error', () => {});
      try {
        c.release(err ?? true);
      } catch {
        // already released
      }
    }
  };

  const scheduleReconnect = () => {
    if (reconnectTimer || channels.size === 0) return;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      if (channels.size === 0) return;
      connect().then(notifyAll, (err: unknown) => {
        options.onListenError?.(err);
        scheduleReconnect();
      });
    }, reconnectDelay);
    reconnectTimer.unref?.();
  };

  const connect = (): Promise<PgListenClientLike> => {
    if (client) return Promise.resolve(client);
    if (connecting) return connecting;
    if (!pool.connect) return Promise.reject(new Error('pgExecutor: LISTEN needs a pg Pool (connect())'));
    const p = (async () => {
      const c = (await pool.connect!()) as PgListenClientLike;
      c.on('notification', (msg) => {
        const set = channels.get(msg.channel);
        if (set) for (const cb of set) cb(msg.payload ?? '');
      });
      c.on('error', (err) => {
        options.onListenError?.(err);
        dropClient(err);
        scheduleReconnect();
      });
      const done = new Set<string>();
      try {
        for (const ch of channels.keys()) {
          await c.query(`LISTEN ${quote(ch)}`);
          done.add(ch);
        }
      } catch (err) {
        c.removeAllListeners('notification');
        c.removeAllListeners('error');
        c.release(err as Error);
        throw err;
      }
      client = c;
      listened = done;
      return c;
    })();
    connecting = p;
    p.finally(() => {
      connecting = null;
    }).catch(() => {});
    return p;
  };

  return {
    async query<R>(text: string, params?: readonly unknown[], opts?: QueryOptions) {
      const config: { text: string; values?: unknown[]; name?: string } = { text };
      if (params) config.values = [...params];
      if (prepare && opts?.name) config.name = opts.name;
      const res = await pool.query(config);
      return { rows: res.rows as R[] };
    },
    async exec(script: string) {
      await pool.query(script);
    },
    async listen(channel: string, onNotify: (payload: string) => void): Promise<Unlisten> {
      let set = channels.get(channel);
      if (!set) {
        set = new Set();
        channels.set(channel, set);
      }
      set.add(onNotify);
      try {
        const c = await connect();
        if (!listened.has(channel)) {
          await c.query(`LISTEN ${quote(channel)}`);
          listened.add(channel);
        }
      } catch (err) {
        set.delete(onNotify);
        if (set.size === 0) channels.delete(channel);
        throw err;
      }
      let active = true;
      return async () => {
        if (!active) return;
        active = false;
        const s = channels.get(channel);
        if (!s) return;
        s.delete(onNotify);
        if (s.size > 0) return;
        channels.delete(channel);
        if (channels.size === 0) {
          if (reconnectTimer) clearTimeout(reconnectTimer);
          reconnectTimer = null;
          const c = client ?? (connecting ? await connecting.catch(() => null) : null);
          if (c && channels.size === 0) {
            client = c;
            await c.query('UNLISTEN *').catch(() => {});
            dropClient();
          }
        } else if (client) {
          listened.delete(channel);
          await client.query(`UNLISTEN ${quote(channel)}`).catch(() => {});
        }
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// PGlite

/** The part of a PGlite instance (or transaction) the adapter uses. */
export interface PGliteLike {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  exec(script: string): Promise<unknown>;
  listen?(channel: string, cb: (payload: string) => void): Promise<() => Promise<void>>;
}

/** Adapts a PGlite instance (the platform's embedded default) or a PGlite transaction. */
export function pgliteExecutor(db: PGliteLike): SqlExecutor {
  const executor: SqlExecutor = {
    async query<R>(text: string, params?: readonly unknown[]) {
      const res = await db.query<R>(text, params ? [...params] : undefined);
      return { rows: res.rows };
    },
    async exec(script: string) {
      await db.exec(script);
    },
  };
  if (db.listen) {
    const listen = db.listen.bind(db);
    executor.listen = async (channel, onNotify) => {
      const unsub = await listen(channel, (payload) => onNotify(payload ?? ''));
      return async () => {
        await unsub();
      };
    };
  }
  return executor;
}
