/** The one place where domain errors become HTTP responses. */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_CODES, type ErrorBody, type ErrorCode, isMinipaasError, MinipaasError } from '@minipaas/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'MINIPAAS_ERR_BAD_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MINIPAAS_ERR_BAD_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'MINIPAAS_ERR_UNSUPPORTED_MEDIA',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'MINIPAAS_ERR_VALIDATION',
};

/** Longest error message sent to a client: messages can quote input, and input can be huge. */
const MAX_MESSAGE_CHARS = 1000;

export function sendError(
  reply: FastifyReply,
  code: ErrorCode,
  message: string,
  details?: unknown,
): FastifyReply {
  const text = message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message;
  const body: ErrorBody = { error: { code, message: text, ...(details !== undefined ? { details } : {}) } };
  return reply.status(ERROR_CODES[code].status).type('application/json').send(body);
}

/**
 * Errors Fastify raises before routing (a URL that is not valid percent-encoding, a path
 * parameter over `maxParamLength`): answered in the documented error format, never Fastify's own.
 * Pass as the `frameworkErrors` option of the Fastify factory.
 */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void sendError(reply, 'MINIPAAS_ERR_URI_TOO_LONG', 'a path segment of the URL is too long');
    return;
  }
  void sendError(reply, 'MINIPAAS_ERR_VALIDATION', 'the URL is not validly percent-encoded');
}

/**
 * Requests that are not even valid HTTP (a malformed request line, headers over the size limit,
 * a client too slow to send them): answered in the documented error format, then closed.
 * Pass as the `clientErrorHandler` option of the Fastify factory.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message]: [number, ErrorCode, string] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'MINIPAAS_ERR_VALIDATION', 'the request was not received in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'MINIPAAS_ERR_VALIDATION', 'the request headers are too large']
        : [400, 'MINIPAAS_ERR_VALIDATION', 'the request is not valid HTTP'];
  const body = JSON.stringify({ error: { code, message } } satisfies ErrorBody);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Media types a JSON body may declare as its charset (JSON is UTF-8: RFC 8259 section 8.1). */
const JSON_CHARSET_RE = /;\s*charset\s*=\s*"?([^";\s]+)"?/i;

/**
 * Replaces Fastify's JSON parser with the same parser (prototype-poisoning protection included)
 * that refuses bodies declared in another charset than UTF-8, and JSON bodies larger than
 * `jsonBodyBytes` whatever the route's upload limit.
 */
export function registerJsonParser(app: FastifyInstance, jsonBodyBytes: number): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: jsonBodyBytes },
    (req, body, done) => {
      const charset = JSON_CHARSET_RE.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
      if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
        done(
          new MinipaasError(
            'MINIPAAS_ERR_UNSUPPORTED_MEDIA',
            `JSON bodies must be UTF-8 (got charset "${charset.slice(0, 40)}")`,
          ),
          undefined,
        );
        return;
      }
      if (Buffer.byteLength(body as string) > jsonBodyBytes) {
        done(
          new MinipaasError(
            'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
            `JSON body is larger than ${jsonBodyBytes} bytes (limits.jsonBodyBytes)`,
          ),
          undefined,
        );
        return;
      }
      parseJson(req, body as string, done);
    },
  );
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (isMinipaasError(err)) {
      if (err.status >= 500) req.log.error({ err }, err.message);
      return sendError(reply, err.code, err.message, err.details);
    }
    const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
    if (mapped) {
      const message =
        mapped === 'MINIPAAS_ERR_BAD_JSON'
          ? `request body is not valid JSON: ${err.message}`
          : mapped === 'MINIPAAS_ERR_UNSUPPORTED_MEDIA'
            ? `unsupported Content-Type "${req.headers['content-type'] ?? ''}"`
            : err.message;
      return sendError(reply, mapped, message);
    }
    if (
      err instanceof SyntaxError ||
      (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500)
    ) {
      const status = err.statusCode ?? 400;
      const code: ErrorCode =
        status === 413
          ? 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE'
          : status === 415
            ? 'MINIPAAS_ERR_UNSUPPORTED_MEDIA'
            : 'MINIPAAS_ERR_VALIDATION';
      return sendError(reply, code, err.message);
    }
    req.log.error({ err }, 'unhandled error');
    return sendError(reply, 'MINIPAAS_ERR_INTERNAL', 'internal error; see the control-plane log');
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, 'MINIPAAS_ERR_NOT_FOUND', `route ${req.method} ${req.url.split('?')[0]} not found`),
  );
}
