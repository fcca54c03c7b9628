/**
 * Change notifications of deployments, for live followers (`GET /deployments/{id}/log?follow`, the CLI)
 * and for the cancel request waiting on the worker. Writers in this process call {@link DeploymentFeed.changed};
 * with a build worker in another process, {@link listenForDeployments} forwards PostgreSQL NOTIFYs
 * (see deployment-store.ts) into the same feed. A notification says only "look again": followers read
 * the row, so a duplicate costs a query and a missed one is caught by their safety poll.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from 'pino';

export class DeploymentFeed {
  readonly #events = new EventEmitter();

  constructor() {
    this.#events.setMaxListeners(0);
  }

  /** Announces a change of deployment `id` to this process's subscribers. */
  changed(id: string): void {
    this.#events.emit(id);
    this.#events.emit('*', id);
  }

  /** Calls `listener` on changes of `id` (or of every deployment with `*`). Returns the unsubscribe. */
  subscribe(id: string, listener: (id: string) => void): () => void {
    this.#events.on(id, listener);
    return () => this.#events.off(id, listener);
  }
}

/** A LISTEN connection feeding NOTIFYs on `channel` into `feed`; reconnects after errors. */
export function listenForDeployments(opts: {
  databaseUrl: string;
  channel: string;
  feed: DeploymentFeed;
  log: Logger;
}): { close(): Promise<void> } {
  let client: pg.Client | null = null;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const connect = async () => {
    if (closed) return;
    const c = new pg.Client({ connectionString: opts.databaseUrl });
    c.on('error', (err) => {
      opts.log.warn({ err: err.message }, 'deployment notifications: connection lost; reconnecting');
      void c.end().catch(() => undefined);
      if (client === c) client = null;
      schedule();
    });
    c.on('notification', (m) => {
      if (m.channel === opts.channel && m.payload) opts.feed.changed(m.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${opts.channel}`);
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, 'deployment notifications: cannot listen; retrying');
      void c.end().catch(() => undefined);
      schedule();
      return;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
  };
  const schedule = () => {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, 1000);
    timer.unref();
  };
  void connect();
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      await c?.end().catch(() => undefined);
    },
  };
}
