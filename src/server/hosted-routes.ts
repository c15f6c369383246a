import type { IncomingMessage, ServerResponse } from 'node:http';
import busboy from 'busboy';
import type { Logger } from 'pino';
import type { AccessToken } from '../config/schema.js';
import { bearerToken, matchToken } from '../core/access-token.js';
import { describeError, isRegistryError } from '../core/errors.js';
import { publishModule } from '../hosted/publish.js';
import { markVersions, type VersionMark } from '../hosted/version-marks.js';
import type { Registry } from '../registry/registry.js';
import { errorResponse, HttpError, sendJson } from './http-error.js';
import { LimiterBusyError, type ProcessLimiter, type Release } from './process-limiter.js';

export interface PublishContext {
  registry: Registry;
  /** The tokens in force (`[server.access] tokens`, reloaded on SIGHUP). */
  tokens(): readonly AccessToken[];
  /** The upload limit: `[hosted] max_archive_size`. */
  maxArchiveSize: number;
  /** Uploads read into memory at once (the rest wait in a short line). */
  uploads: ProcessLimiter;
  logger: Logger | undefined;
  /** Counts each publish by how it ended (metrics). */
  onResult(result: string): void;
  /** After a publish or mark that changed the indexes: let the server's own views catch up. */
  onPublished(): Promise<void>;
}

/** The multipart upload as `moon publish` sends it: a `token` field and a `file` field. */
interface Upload {
  token?: string;
  file?: Buffer;
  /** The file went past the limit: its bytes were dropped as they came. */
  tooLarge: boolean;
}

/** Multipart fields other than the file: a token is short. */
const MAX_FIELD_BYTES = 4096;

/**
 * `POST /api/v0/publish` (PROTOCOL.md 5b): the zip in a multipart `file` field, the token in a
 * `token` field or `Authorization: Bearer`. A publish token is needed even on an open registry.
 * Errors are `{"error": ...}`, decided in this order: 401 no or unknown token, 413 too large,
 * 400 a bad archive or upload, 403 the token may not publish that module (a read-only token
 * included), 409 that version is published with other bytes. 200 `{"status":"ok"}` otherwise,
 * the same bytes again included.
 */
export async function handlePublish(ctx: PublishContext, req: IncomingMessage, res: ServerResponse) {
  let result = 'error';
  let release: Release | undefined;
  try {
    // A token in the header is checked before a byte of the body is kept.
    if (bearerToken(req.headers.authorization) !== undefined) await refuseUnknownBearer(req, ctx);
    release = await uploadSlot(ctx.uploads, res);
    const upload = await readUpload(req, ctx.maxArchiveSize, (secret) => knownToken(secret, ctx.tokens()));
    const token = presentedToken(req, upload.token, ctx.tokens());
    if (upload.tooLarge) throw new HttpError(413, `the archive is larger than ${ctx.maxArchiveSize} bytes`);
    if (!upload.file) throw new HttpError(400, 'no "file" field with the module zip in the form');
    const outcome = await publishModule(
      ctx.registry,
      { bytes: upload.file, publisher: token.name, scope: token.publish ?? [] },
      {
        info: (message) => ctx.logger?.info(message),
        warn: (message) => ctx.logger?.warn(message),
      },
    );
    result = outcome.result;
    if (outcome.result === 'published') await ctx.onPublished();
    const { module, version, checksum } = outcome;
    ctx.logger?.info({ module, version, checksum, token: token.name, result }, 'publish');
    sendJson(res, 200, { status: 'ok', module, version, checksum, result });
  } catch (error) {
    const answered = busyAsRetry(error);
    result = resultOf(answered);
    if (result !== 'unauthorized')
      ctx.logger?.info({ result, error: describeError(error) }, 'publish refused');
    throw answered;
  } finally {
    release?.();
    ctx.onResult(result);
  }
}

/**
 * An unknown bearer token is refused before the upload is kept. A body of a size a module may
 * have is read and dropped first, so the client (which is still sending) reads the 401 instead
 * of a reset connection; a larger or unannounced one is answered at once and the connection
 * closed.
 */
async function refuseUnknownBearer(req: IncomingMessage, ctx: PublishContext): Promise<void> {
  try {
    presentedToken(req, undefined, ctx.tokens());
  } catch (error) {
    const announced = Number(req.headers['content-length'] ?? Number.NaN);
    if (announced <= ctx.maxArchiveSize + MAX_FORM_OVERHEAD) {
      req.resume();
      await new Promise<void>((resolve) => {
        req.once('end', resolve);
        req.once('close', resolve);
      });
    }
    throw error;
  }
}

/** Multipart framing and the token field around a module zip. */
const MAX_FORM_OVERHEAD = 64 * 1024;

/**
 * One of the few upload slots: each upload is held in memory (up to max_archive_size) while it
 * is checked, so their number is bounded; a client beyond the line is told to come back.
 */
async function uploadSlot(uploads: ProcessLimiter, res: ServerResponse): Promise<Release> {
  const gone = new AbortController();
  const onClose = () => gone.abort();
  res.once('close', onClose);
  try {
    return await uploads.acquire(gone.signal);
  } catch (error) {
    if (error instanceof LimiterBusyError) {
      throw new HttpError(503, 'too many uploads at once; try again shortly', {
        'Retry-After': '5',
        Connection: 'close',
      });
    }
    throw error;
  } finally {
    res.off('close', onClose);
  }
}

/** How a refused publish ended, for the metric: from the error's status, one place. */
function resultOf(error: unknown): string {
  const { status } = errorResponse(error);
  const results: Record<number, string> = {
    400: 'invalid',
    401: 'unauthorized',
    403: 'forbidden',
    409: 'conflict',
    413: 'too_large',
    503: 'busy',
  };
  return results[status] ?? 'error';
}

/**
 * The token of a publish, yank or deprecate: `Authorization: Bearer`, else the one in the body
 * (moon sends it as a form field). Every stored hash is compared in constant time (matchToken).
 * 401 without one, or with one this registry does not know.
 */
function presentedToken(
  req: IncomingMessage,
  inBody: string | undefined,
  tokens: readonly AccessToken[],
): AccessToken {
  const secret = bearerToken(req.headers.authorization) ?? inBody;
  const token = secret === undefined ? undefined : knownToken(secret, tokens);
  if (!token) throw unauthorized(secret === undefined ? 'a publish token is required' : 'unknown token');
  return token;
}

function knownToken(secret: string, tokens: readonly AccessToken[]): AccessToken | undefined {
  const name = matchToken(secret, tokens);
  return name === undefined ? undefined : tokens.find((t) => t.name === name);
}

/** The body may still be coming: the connection is closed after the answer, not drained. */
function unauthorized(message: string): HttpError {
  return new HttpError(401, message, {
    'WWW-Authenticate': 'Bearer realm="moonbit-registry publish"',
    Connection: 'close',
  });
}

/** A mirror holds the registry (a long run): the client should come back, not give up. */
function busyAsRetry(error: unknown): unknown {
  if (!isRegistryError(error) || error.code !== 'LOCKED') return error;
  return new HttpError(503, `the registry is busy (${error.message}); try again shortly`, {
    'Retry-After': '10',
  });
}

/** The mark each path asks for. */
const MARKS = {
  yank: (body: Record<string, unknown>): VersionMark => {
    if (body.reason !== undefined && typeof body.reason !== 'string') {
      throw new HttpError(400, '"reason" must be a string');
    }
    return { kind: 'yank', ...(body.reason ? { reason: body.reason } : {}) };
  },
  unyank: (): VersionMark => ({ kind: 'unyank' }),
  deprecate: (body: Record<string, unknown>): VersionMark => {
    if (typeof body.message !== 'string') throw new HttpError(400, '"message" (a string) is required');
    return { kind: 'deprecate', message: body.message };
  },
} as const;

/** Most bytes of a yank or deprecate request's JSON body. */
const MAX_MARK_BODY = 16 * 1024;

/**
 * `POST /api/v0/yank`, `/api/v0/unyank` and `/api/v0/deprecate`: a JSON body `{"module",
 * "version", "reason" | "message"}` (no version: every version, deprecate only) and a publish
 * token whose globs cover the module. Answers `{"status":"ok","versions":[...]}`.
 */
export async function handleMark(
  ctx: PublishContext,
  kind: keyof typeof MARKS,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  // A token in the header is checked before the body is read.
  if (bearerToken(req.headers.authorization) !== undefined) presentedToken(req, undefined, ctx.tokens());
  const body = await readJsonBody(req);
  const token = presentedToken(req, typeof body.token === 'string' ? body.token : undefined, ctx.tokens());
  try {
    await mark(ctx, kind, body, token, res);
  } catch (error) {
    throw busyAsRetry(error);
  }
}

async function mark(
  ctx: PublishContext,
  kind: keyof typeof MARKS,
  body: Record<string, unknown>,
  token: AccessToken,
  res: ServerResponse,
): Promise<void> {
  if (typeof body.module !== 'string') throw new HttpError(400, '"module" (a string) is required');
  if (body.version !== undefined && typeof body.version !== 'string') {
    throw new HttpError(400, '"version" must be a string');
  }
  const outcome = await markVersions(
    ctx.registry,
    {
      module: body.module,
      ...(body.version === undefined ? {} : { version: body.version }),
      mark: MARKS[kind](body),
      by: token.name,
      scope: token.publish ?? [],
    },
    { info: (message) => ctx.logger?.info(message), warn: (message) => ctx.logger?.warn(message) },
  );
  if (outcome.versions.length > 0) await ctx.onPublished();
  ctx.logger?.info({ module: outcome.module, versions: outcome.versions, token: token.name }, kind);
  sendJson(res, 200, { status: 'ok', module: outcome.module, versions: outcome.versions });
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > MAX_MARK_BODY) throw new HttpError(413, `the body is larger than ${MAX_MARK_BODY} bytes`);
    parts.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body must be a JSON object');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/**
 * Reads the multipart body. The file is kept in memory up to `maxFile` bytes (a module zip is
 * small, and it must be hashed and checked whole anyway); past that it is drained and dropped,
 * so the answer can still be 401 for a bad token. A body cut short is a 400.
 */
function readUpload(
  req: IncomingMessage,
  maxFile: number,
  isKnown: (secret: string) => AccessToken | undefined,
): Promise<Upload> {
  const type = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(type)) {
    req.resume();
    return Promise.reject(new HttpError(400, 'expected multipart/form-data with a "file" field'));
  }
  return new Promise((resolve, reject) => {
    const upload: Upload = { tooLarge: false };
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: { fileSize: maxFile, files: 1, fields: 8, fieldSize: MAX_FIELD_BYTES, parts: 16 },
      });
    } catch (error) {
      req.resume();
      reject(new HttpError(400, `bad multipart request: ${(error as Error).message}`));
      return;
    }
    let failed = false;
    const fail = (error: HttpError) => {
      if (failed) return;
      failed = true;
      req.unpipe(parser);
      req.resume();
      reject(error);
    };
    const cutShort = () => fail(new HttpError(400, 'the upload was cut short', { Connection: 'close' }));
    // A token field that comes before the file is checked at once: the file of an unknown
    // client is read to the end (the client is still sending) but never kept.
    let tokenRefused = false;
    parser.on('field', (name, value) => {
      if (name !== 'token') return;
      upload.token = value.trim();
      tokenRefused = isKnown(upload.token) === undefined;
    });
    parser.on('file', (name, stream) => {
      // A body that ends inside a part errors the part's stream too: never leave that unheard.
      stream.on('error', cutShort);
      if (name !== 'file') {
        stream.resume();
        return;
      }
      const parts: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => {
        if (!upload.tooLarge && !tokenRefused) parts.push(chunk);
      });
      stream.on('limit', () => {
        // Read on to the end but kept no more: the client is still sending, and a reset would
        // hide the 413 (or the 401 of a token field that follows) from it.
        upload.tooLarge = true;
        parts.length = 0;
      });
      stream.on('end', () => {
        if (!upload.tooLarge && !tokenRefused) upload.file = Buffer.concat(parts);
      });
    });
    parser.on('error', (error: Error) => fail(new HttpError(400, `bad multipart request: ${error.message}`)));
    parser.on('close', () => {
      if (!failed) resolve(upload);
    });
    req.on('aborted', cutShort);
    req.on('error', cutShort);
    req.pipe(parser);
  });
}
