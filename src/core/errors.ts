/**
 * One error type for everything a user can cause or meet: bad input, a broken config, an
 * unreachable or lying upstream. The CLI prints `message` (and `hint`) on one line and exits
 * non-zero; the server maps `code` to an HTTP status in one place.
 */
export type ErrorCode =
  | 'USAGE'
  | 'CONFIG'
  | 'NOT_FOUND'
  | 'EXISTS'
  | 'UPSTREAM'
  | 'AUTH'
  | 'CHECKSUM'
  | 'LOCKED'
  | 'GIT'
  | 'IO'
  /** A request this registry refuses on its merits: a bad upload, a token without the right. */
  | 'INVALID'
  | 'TOO_LARGE'
  | 'FORBIDDEN'
  /** The same module@version with other bytes is already there. */
  | 'CONFLICT'
  /** A service the registry stands on (object storage, coordination) does not answer: 503. */
  | 'UNAVAILABLE';

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isRegistryError(error: unknown): error is RegistryError {
  return error instanceof RegistryError;
}

/** A short, single-line description of any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof RegistryError) return error.message;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
