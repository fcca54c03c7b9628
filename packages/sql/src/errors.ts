/** What an error was about: the SQL function and the queue or stream it was called for. */
export interface MinipaasSqlErrorContext {
  /** The SQL function that failed, e.g. `minipaas_queue_dequeue`. */
  sqlFunction: string;
  /** The queue the call was for, when it was a queue call. */
  queue?: string | undefined;
  /** The stream the call was for, when it was a stream call. */
  stream?: string | undefined;
  /** The PostgreSQL SQLSTATE, when the database raised the error (e.g. `22023`, `42704`). */
  code?: string | undefined;
  cause?: unknown;
}

/**
 * Every error thrown by the client. The message names the SQL function and the queue or stream;
 * the same facts are available as properties.
 */
export class MinipaasSqlError extends Error {
  readonly sqlFunction: string;
  readonly queue: string | undefined;
  readonly stream: string | undefined;
  readonly code: string | undefined;

  constructor(message: string, context: MinipaasSqlErrorContext) {
    const target = context.queue !== undefined ? `queue "${context.queue}"` : `stream "${context.stream}"`;
    const prefix = `${context.sqlFunction}:`;
    const full = message.startsWith(prefix) ? message : `${context.sqlFunction} (${target}): ${message}`;
    super(full, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'MinipaasSqlError';
    this.sqlFunction = context.sqlFunction;
    this.queue = context.queue;
    this.stream = context.stream;
    this.code = context.code;
  }
}
