/** The one place where domain errors become HTTP responses. */
import { ERROR_CODES, type ErrorBody, type ErrorCode, isMinipaasError } from '@minipaas/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'MINIPAAS_ERR_BAD_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MINIPAAS_ERR_BAD_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'MINIPAAS_ERR_UNSUPPORTED_MEDIA',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'MINIPAAS_ERR_VALIDATION',
};

export function sendError(
  reply: FastifyReply,
  code: ErrorCode,
  message: string,
  details?: unknown,
): FastifyReply {
  const body: ErrorBody = { error: { code, message, ...(details !== undefined ? { details } : {}) } };
  return reply.status(ERROR_CODES[code].status).type('application/json').send(body);
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
