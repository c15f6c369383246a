import type { ServerResponse } from 'node:http';
import { type ErrorCode, isRegistryError } from '../core/errors.js';

/** An error that already knows its HTTP status; its message is safe to show to clients. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface ErrorResponse {
  status: number;
  message: string;
  headers: Record<string, string>;
  /** True when the error is ours (a bug or a broken registry) rather than the client's. */
  internal: boolean;
}

/** Registry error codes that describe the client's request; every other code is our problem. */
const CLIENT_ERROR_STATUS: Partial<Record<ErrorCode, number>> = {
  NOT_FOUND: 404,
  USAGE: 400,
  INVALID: 400,
  FORBIDDEN: 403,
  CONFLICT: 409,
  TOO_LARGE: 413,
};

/**
 * The one place that turns a thrown value into a status. Only messages we wrote for clients
 * go out; anything unexpected becomes a generic 500 so paths and stacks never leak.
 */
export function errorResponse(error: unknown): ErrorResponse {
  if (error instanceof HttpError) {
    // Gateway errors (502, 503, 504) are about upstreams, not bugs here.
    const internal = error.status >= 500 && ![502, 503, 504].includes(error.status);
    return { status: error.status, message: error.message, headers: error.headers, internal };
  }
  if (isRegistryError(error)) {
    // Storage or coordination down: "try again", never a 404 that a cache would keep.
    if (error.code === 'UNAVAILABLE') {
      const headers = { 'Retry-After': BUSY_RETRY_AFTER_SECONDS };
      return { status: 503, message: error.message, headers, internal: false };
    }
    const status = CLIENT_ERROR_STATUS[error.code];
    if (status !== undefined) return { status, message: error.message, headers: {}, internal: false };
  }
  return { status: 500, message: 'internal server error', headers: {}, internal: true };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-cache',
    ...headers,
  });
  res.end(text);
}

export function notFound(message = 'not found'): HttpError {
  return new HttpError(404, message);
}

export function methodNotAllowed(allowed: readonly string[]): HttpError {
  return new HttpError(405, 'method not allowed', { Allow: allowed.join(', ') });
}

/** Seconds a client turned away by a busy server (no git slot, no memory) should wait. */
export const BUSY_RETRY_AFTER_SECONDS = '5';
