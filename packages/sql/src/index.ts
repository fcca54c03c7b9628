/**
 * @minipaas/sql: durable queues and append-only streams inside PostgreSQL.
 *
 * The SQL (PL/pgSQL functions in dbmate-format migrations) is the product; this client is a typed
 * convenience over it that works with a `pg` Pool and with PGlite.
 */
export { MinipaasSqlError, type MinipaasSqlErrorContext } from './errors.ts';
export {
  type PGliteLike,
  type PgExecutorOptions,
  type PgPoolLike,
  pgExecutor,
  pgliteExecutor,
  type QueryOptions,
  type SqlExecutor,
  type SqlResult,
  type Unlisten,
} from './executor.ts';
export {
  MIGRATIONS_DIR,
  type Migration,
  migrate,
  migrationSql,
  migrations,
  parseMigration,
  unmigrate,
} from './migrations.ts';
export { isValidName, MAX_BATCH, MAX_WRITE_BATCH, NAME_PATTERN } from './names.ts';
export {
  type DeadMessage,
  type DequeueOptions,
  type EnqueueOptions,
  type NackOptions,
  Queue,
  type QueueMessage,
  type QueueMetrics,
  type QueueOptions,
  type QueueWorker,
  type WorkOptions,
} from './queue.ts';
export {
  Stream,
  type StreamConsumer,
  type StreamEvent,
  type StreamMetrics,
  type StreamOptions,
  type SubscribeOptions,
  type Subscription,
} from './stream.ts';
