import type { ErrorRequestHandler } from 'express';
import { RequestError, assertNever, isRequestError, type Logger, type RequestErrorCode } from '@toolplane/core';
import { isRedisUnavailable } from '@toolplane/queue';

export function statusOf(code: RequestErrorCode): number {
  switch (code) {
    case 'INVALID_JSON':
    case 'INVALID_REQUEST':
    case 'INVALID_TOOL':
    case 'INVALID_ARGUMENTS':
      return 400;
    case 'UNAUTHORIZED':
      return 401;
    case 'FORBIDDEN':
      return 403;
    case 'NOT_FOUND':
    case 'TOOL_NOT_FOUND':
      return 404;
    case 'CONFLICT':
      return 409;
    case 'PAYLOAD_TOO_LARGE':
      return 413;
    case 'UNSUPPORTED_MEDIA_TYPE':
      return 415;
    case 'RATE_LIMITED':
    case 'QUOTA_EXCEEDED':
      return 429;
    case 'INTERNAL':
      return 500;
    case 'UPSTREAM_ERROR':
      return 502;
    case 'UNAVAILABLE':
      return 503;
    default:
      return assertNever(code);
  }
}

/** Turns any error into `{error: {code, message, details?}}` with the status its code implies. */
export function toRequestError(err: unknown): RequestError {
  if (isRequestError(err)) return err;
  const e = err as { type?: string; status?: number; message?: string };
  if (e?.type === 'entity.parse.failed') return new RequestError('INVALID_JSON', 'request body is not valid JSON');
  if (e?.type === 'entity.too.large') return new RequestError('PAYLOAD_TOO_LARGE', 'request body is too large');
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
    return new RequestError('INVALID_REQUEST', e.message ?? 'unsupported encoding');
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    return new RequestError('INVALID_REQUEST', e.message ?? 'bad request');
  }
  if (isRedisUnavailable(err)) return new RequestError('UNAVAILABLE', 'the queue store is unreachable; retry later');
  return new RequestError('INTERNAL', 'internal error', undefined, { cause: err });
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const re = toRequestError(err);
    const status = statusOf(re.code);
    if (status >= 500 && re.code !== 'UNAVAILABLE') logger.error({ err, path: req.path }, 'request failed');
    if (res.headersSent) return void res.end();
    res.status(status).json({ error: { code: re.code, message: re.message, ...(re.details ? { details: re.details } : {}) } });
  };
}
