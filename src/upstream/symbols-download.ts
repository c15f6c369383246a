import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Dispatcher, request } from 'undici';
import { newArchiveHash } from '../core/checksum.js';
import { describeError, RegistryError } from '../core/errors.js';
import { zipProblem } from '../fs/zip-readable.js';
import { DownloadError, type DownloadLimits } from './archive-download.js';
import { USER_AGENT } from './http-agent.js';

export interface SymbolsRequest {
  url: string;
  headers: Record<string, string>;
  /** The upstream's ETag of the copy we hold: sent as If-None-Match. */
  etag: string | undefined;
  /** Existing or creatable folder for the partial file (data/tmp/<process>). */
  tmpDir: string;
  dispatcher: Dispatcher;
  limits: DownloadLimits;
  /** What to call it in messages, e.g. `symbols.zip from mooncakes`. */
  label: string;
}

/**
 * modified: a new zip is in `file` (a temp file the caller renames into place or removes);
 * not-modified: the upstream answered 304; absent: 404, the source has no symbols.
 */
export type SymbolsAnswer =
  | { status: 'modified'; file: string; etag: string | undefined; sha256: string; size: number }
  | { status: 'not-modified'; etag: string | undefined }
  | { status: 'absent' };

/**
 * One conditional GET of a source's symbols.zip. The body is streamed to a temp file, never
 * held in memory, bounded like an archive ([mirror] max_archive_size and archive_timeout), and
 * kept only when it is whole and a readable zip: an HTML error page sent with 200 is refused.
 */
export async function fetchSymbols(job: SymbolsRequest): Promise<SymbolsAnswer> {
  let response: Dispatcher.ResponseData;
  try {
    response = await request(job.url, {
      method: 'GET',
      dispatcher: job.dispatcher,
      headers: {
        'user-agent': USER_AGENT,
        ...job.headers,
        ...(job.etag ? { 'if-none-match': job.etag } : {}),
      },
      signal: AbortSignal.timeout(job.limits.deadlineMs),
    });
  } catch (error) {
    throw new DownloadError(`${job.label}: request to ${job.url} failed: ${describeError(error)}`, {
      retryable: true,
      unreachable: true,
    });
  }
  const etag = headerValue(response.headers.etag);
  if (response.statusCode !== 200) {
    await response.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    if (response.statusCode === 304 && job.etag) return { status: 'not-modified', etag: etag ?? job.etag };
    if (response.statusCode === 404) return { status: 'absent' };
    const status = response.statusCode;
    if (status === 401 || status === 403) {
      throw new DownloadError(
        `${job.label}: ${job.url} answered ${status}: the source refused the credentials (check [sources.auth])`,
        { retryable: false, status },
        'AUTH',
      );
    }
    throw new DownloadError(`${job.label}: ${job.url} answered HTTP ${status}`, {
      retryable: status >= 500,
      status,
    });
  }
  const { maxBytes } = job.limits;
  const tooLarge = (bytes: number) =>
    new DownloadError(
      `${job.label}: ${job.url} sends ${bytes} bytes or more, over the limit of ${maxBytes} ([mirror] max_archive_size); not kept`,
      { retryable: false },
    );
  const expectedLength = Number(response.headers['content-length'] ?? Number.NaN);
  if (expectedLength > maxBytes) {
    response.body.on('error', () => undefined); // destroying it reports an abort nobody waits for
    response.body.destroy();
    throw tooLarge(expectedLength);
  }
  const temp = join(job.tmpDir, `symbols.${process.pid}.${randomBytes(4).toString('hex')}.part`);
  const hash = newArchiveHash();
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (size + chunk.length > maxBytes) {
        callback(tooLarge(size + chunk.length));
        return;
      }
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  let kept = false;
  try {
    try {
      await mkdir(job.tmpDir, { recursive: true });
      await pipeline(
        response.body,
        meter,
        createWriteStream(temp, { flags: 'wx', mode: 0o644, flush: true }),
      );
    } catch (error) {
      if (error instanceof DownloadError) throw error;
      if ((error as NodeJS.ErrnoException).syscall) {
        throw new RegistryError('IO', `${job.label}: cannot write ${temp}: ${describeError(error)}`);
      }
      throw new DownloadError(`${job.label}: body from ${job.url} broke off: ${describeError(error)}`, {
        retryable: true,
      });
    }
    if (Number.isFinite(expectedLength) && size !== expectedLength) {
      throw new DownloadError(
        `${job.label}: truncated body from ${job.url} (${size} of ${expectedLength} bytes)`,
        { retryable: true },
      );
    }
    const unreadable = await zipProblem(temp);
    if (unreadable) {
      throw new DownloadError(
        `${job.label}: ${job.url} sent something that is not a zip (${unreadable}); not kept`,
        {
          retryable: false,
        },
      );
    }
    kept = true;
    return { status: 'modified', file: temp, etag, sha256: hash.digest('hex'), size };
  } finally {
    if (!kept) await rm(temp, { force: true }).catch(() => undefined);
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
