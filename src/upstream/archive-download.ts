import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Dispatcher, request } from 'undici';
import { checksumMismatchMessage, newArchiveHash } from '../core/checksum.js';
import { describeError, RegistryError } from '../core/errors.js';
import { USER_AGENT } from './http-agent.js';

export interface ArchiveDownload {
  url: string;
  /** Extra request headers (the source's Authorization, if any). */
  headers: Record<string, string>;
  expectedChecksum: string;
  /**
   * Keeps the verified temp file (consumes it): moved into the store. Only bytes with the
   * expected checksum ever reach it.
   */
  keep(file: string): Promise<void>;
  /** Existing folder for the partial file. */
  tmpDir: string;
  dispatcher: Dispatcher;
  /** What to call the download in messages, e.g. `moonbitlang/x@0.4.40 from mooncakes`. */
  label: string;
  /** Sees the body as it arrives, for a client waiting on a pull-through download. */
  observer?: DownloadObserver;
  limits?: DownloadLimits;
}

/** Bounds on one download, whatever the upstream says or does. */
export interface DownloadLimits {
  /** Larger bodies (announced or sent) are refused: a lying upstream cannot fill the disk. */
  maxBytes: number;
  /** The whole download, body included: a trickle of a byte a second never trips the idle timeout. */
  deadlineMs: number;
}

/**
 * Follows one download attempt. `verified` comes when the last byte has arrived and the length
 * and checksum are right, before the file is durable: a client may have the bytes at once.
 */
export interface DownloadObserver {
  /** The upstream answered 200; `length` is its Content-Length, if it sent one. */
  started(length: number | undefined): void;
  data(chunk: Buffer): void;
  verified(): void;
}

/** System calls of our temp file (a reset socket fails in `read`, never in these). */
const LOCAL_FILE_CALLS = new Set(['mkdir', 'open', 'write', 'fsync', 'close']);

export interface DownloadErrorDetails {
  /** The same URL may succeed if asked again (5xx, reset, timeout, short body). */
  retryable: boolean;
  /** The upstream's HTTP status, when it answered with one. */
  status?: number;
  /** The upstream did not answer or send within the timeout. */
  timeout?: boolean;
  /**
   * No HTTP answer at all (refused, reset, unknown host, no headers in time): the host is in
   * trouble, not one archive.
   */
  unreachable?: boolean;
}

/** A failed attempt at one URL. */
export class DownloadError extends RegistryError {
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly timeout: boolean;
  readonly unreachable: boolean;
  constructor(
    message: string,
    details: DownloadErrorDetails,
    code: 'UPSTREAM' | 'AUTH' | 'CHECKSUM' = 'UPSTREAM',
  ) {
    super(code, message);
    this.retryable = details.retryable;
    this.status = details.status;
    this.timeout = details.timeout ?? false;
    this.unreachable = details.unreachable ?? false;
  }
}

/** undici's timeout errors: connect, headers and body (idle between chunks). */
function isTimeout(error: unknown): boolean {
  const { code, name } = error as { code?: unknown; name?: unknown };
  return (typeof code === 'string' && /TIMEOUT/.test(code)) || name === 'TimeoutError';
}

/**
 * Streams the body to a temp file while hashing it, then keeps it only if the length and the
 * checksum are right: fsync, then rename into place. A crash at any point leaves at most a
 * temp file, which `mirror` clears at its next start.
 */
export async function downloadArchive(job: ArchiveDownload): Promise<number> {
  let response: Dispatcher.ResponseData;
  try {
    response = await request(job.url, {
      method: 'GET',
      dispatcher: job.dispatcher,
      headers: { 'user-agent': USER_AGENT, ...job.headers },
      ...(job.limits ? { signal: AbortSignal.timeout(job.limits.deadlineMs) } : {}),
    });
  } catch (error) {
    throw new DownloadError(`${job.label}: request to ${job.url} failed: ${describeError(error)}`, {
      retryable: true,
      timeout: isTimeout(error),
      unreachable: true,
    });
  }
  if (response.statusCode !== 200) {
    // Read at most a little of an error body: an upstream could stream one without end.
    await response.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    throw statusError(job, response.statusCode);
  }
  const expectedLength = Number(response.headers['content-length'] ?? Number.NaN);
  const maxBytes = job.limits?.maxBytes ?? Number.POSITIVE_INFINITY;
  const tooLarge = (bytes: number) =>
    new DownloadError(
      `${job.label}: ${job.url} sends ${bytes} bytes or more, over the limit of ${maxBytes} ([mirror] max_archive_size); not kept`,
      { retryable: false },
    );
  if (expectedLength > maxBytes) {
    response.body.on('error', () => undefined); // destroying it reports an abort nobody waits for
    response.body.destroy();
    throw tooLarge(expectedLength);
  }
  const { observer } = job;
  observer?.started(Number.isFinite(expectedLength) ? expectedLength : undefined);
  const temp = join(
    job.tmpDir,
    `${job.expectedChecksum}.${process.pid}.${randomBytes(4).toString('hex')}.part`,
  );
  const hash = newArchiveHash();
  let received = 0;
  let actual: string | undefined;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (received + chunk.length > maxBytes) {
        callback(tooLarge(received + chunk.length));
        return;
      }
      hash.update(chunk);
      received += chunk.length;
      observer?.data(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      // The whole body is here: judge it now, so a waiting client need not wait for the fsync.
      actual = hash.digest('hex');
      const complete = !Number.isFinite(expectedLength) || received === expectedLength;
      if (complete && actual === job.expectedChecksum) observer?.verified();
      callback();
    },
  });
  let kept = false;
  try {
    try {
      // The folder may have been removed under a long-running server: make sure it is there.
      await mkdir(job.tmpDir, { recursive: true });
      // flush: the file is fsynced before the stream reports done, so it is durable before
      // it gets its final name.
      await pipeline(
        response.body,
        meter,
        createWriteStream(temp, { flags: 'wx', mode: 0o644, flush: true }),
      );
    } catch (error) {
      if (error instanceof DownloadError) throw error; // judged on the way (too large)
      // A failing local write (disk full, permissions) is ours, not the upstream's: no retry.
      if (LOCAL_FILE_CALLS.has((error as NodeJS.ErrnoException).syscall ?? '')) {
        throw new RegistryError('IO', `${job.label}: cannot write ${temp}: ${describeError(error)}`);
      }
      throw new DownloadError(`${job.label}: body from ${job.url} broke off: ${describeError(error)}`, {
        retryable: true,
        timeout: isTimeout(error),
      });
    }
    if (Number.isFinite(expectedLength) && received !== expectedLength) {
      throw new DownloadError(
        `${job.label}: truncated body from ${job.url} (${received} of ${expectedLength} bytes)`,
        { retryable: true },
      );
    }
    if (actual !== job.expectedChecksum) {
      throw new DownloadError(
        `${checksumMismatchMessage(job.label, job.expectedChecksum, actual ?? '?')} (from ${job.url}); not kept`,
        { retryable: false },
        'CHECKSUM',
      );
    }
    // The folder is not fsynced: after a crash a lost rename only means a second download.
    await job.keep(temp);
    kept = true;
    return received;
  } finally {
    // Never let clean-up hide the real error (rm fails too when the folder itself is the problem).
    if (!kept) await rm(temp, { force: true }).catch(() => undefined);
  }
}

function statusError(job: ArchiveDownload, status: number): DownloadError {
  if (status === 401 || status === 403) {
    return new DownloadError(
      `${job.label}: ${job.url} answered ${status}: the source refused the credentials (check [sources.auth])`,
      { retryable: false, status },
      'AUTH',
    );
  }
  // 408/429 and 5xx are the upstream's passing trouble; any other status will not change.
  const retryable = status === 408 || status === 429 || status >= 500;
  return new DownloadError(`${job.label}: ${job.url} answered HTTP ${status}`, { retryable, status });
}

/** Exponential backoff with jitter: 200 ms, 400 ms, 800 ms, ... capped at 5 s. */
export function backoffDelay(attempt: number): number {
  const base = Math.min(5000, 200 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}
