import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Coordination } from '../coordination/redis-coordination.js';
import { describeError, isRegistryError } from '../core/errors.js';
import { moduleKey } from '../core/module-name.js';
import type { Registry } from '../registry/registry.js';
import { downloadLimits } from '../registry/source-indexes.js';
import type { BlobRead } from '../store/blob/blob-store.js';
import { ArchiveFetchError, fetchArchive } from '../upstream/archive-fetch.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { BUSY_RETRY_AFTER_SECONDS, HttpError } from './http-error.js';
import { SharedDownload } from './shared-download.js';

export interface PullThroughOptions {
  registry: Registry;
  pool: UpstreamPool;
  /** This process's temp folder (data/tmp/<pid>). */
  tmpDir: string;
  /** How long an upstream's "no such archive" is remembered; 0 remembers nothing. */
  negativeTtlMs: number;
  logger: Logger | undefined;
  /** Each request to an upstream, and each that failed (metrics). */
  onUpstream?(source: string, event: 'request' | 'error'): void;
  /** Replicas: one download of an archive across all of them. */
  coordination?: Coordination;
}

export interface ArchiveRequest {
  module: string;
  version: string;
  /** From the served index line the client saw. */
  checksum: string;
}

/**
 * Pull-through for archives that are listed but not stored: fetched from the source whose line
 * won (or another with the same checksum), verified, stored atomically and streamed to every
 * client asking meanwhile, with one upstream download per archive however many ask.
 */
export class PullThrough {
  private readonly inflight = new Map<string, SharedDownload>();
  /** Each download's own promise, which ends after its archive is stored (or not). */
  private readonly flights = new Map<SharedDownload, Promise<void>>();
  private readonly notFound: LRUCache<string, HttpError> | undefined;

  constructor(private readonly options: PullThroughOptions) {
    if (options.negativeTtlMs > 0) {
      this.notFound = new LRUCache({ max: 10_000, ttl: options.negativeTtlMs });
    }
  }

  /** Downloads in progress, for /health. */
  get inProgress(): number {
    return this.inflight.size;
  }

  /**
   * Answers from the download of this archive, joining the one in flight or starting one.
   * Returns false, without answering, when the archive turned out to be stored already (its
   * download finished just before): the caller serves the file.
   */
  async serve(
    req: IncomingMessage,
    res: ServerResponse,
    archive: ArchiveRequest,
    headers: (length: number | undefined) => OutgoingHttpHeaders,
  ): Promise<boolean> {
    const { store } = this.options.registry;
    const key = store.keyFor(archive.module, archive.version, archive.checksum);
    const remembered = this.notFound?.get(key);
    if (remembered) throw remembered;
    let download = this.inflight.get(key);
    if (!download) {
      if (await store.has(archive.module, archive.version, archive.checksum)) return false;
      download = this.inflight.get(key) ?? this.start(archive, key);
    }
    await download.sendTo(req, res, headers);
    return true;
  }

  /**
   * Waits for the downloads that are verified and being stored. Clients get an archive's last
   * byte before it is fsynced and renamed into the store, so shutdown waits here before it
   * removes the temp folder, or an archive a client already has would never be stored. A
   * download still receiving is not waited for: it may trickle for minutes, and nobody has it.
   * (An asset is stored before its client is answered, so no asset needs this.)
   */
  async settled(): Promise<void> {
    const storing = [...this.flights].filter(([download]) => download.isVerified);
    await Promise.allSettled(storing.map(([, flight]) => flight));
  }

  private start(archive: ArchiveRequest, key: string): SharedDownload {
    const download = new SharedDownload();
    this.inflight.set(key, download);
    const flight = this.download(download, archive, key).finally(() => {
      this.inflight.delete(key);
      this.flights.delete(download);
    });
    this.flights.set(download, flight);
    return download;
  }

  private async download(shared: SharedDownload, archive: ArchiveRequest, key: string): Promise<void> {
    const { module, version, checksum } = archive;
    const { pool, registry, logger } = this.options;
    const label = moduleKey(module, version);
    const sources = pool.sourcesFor(module, version, checksum);
    if (sources.length === 0) {
      shared.fail(
        new HttpError(502, `${label}: no enabled source offers this archive (checksum ${checksum}) any more`),
      );
      return;
    }
    const started = performance.now();
    const fetchFromUpstream = () =>
      fetchArchive(
        { module, version, checksum, keep: (file) => registry.store.put(module, version, checksum, file) },
        {
          sources,
          tmpDir: this.options.tmpDir,
          dispatcherFor: pool.dispatcherFor,
          retries: registry.config.mirror.retries,
          limits: downloadLimits(registry.config),
          health: (name) => pool.health(name),
          observer: shared,
          onRetry: (what, attempt, reason) => logger?.warn({ attempt, reason }, `retrying ${what}`),
          ...(this.options.onUpstream ? { onUpstream: this.options.onUpstream } : {}),
        },
      );
    try {
      const { coordination } = this.options;
      const { bytes, source } = coordination
        ? // One download across every replica: the lease holder fetches and stores; a replica
          // that waited for it finds the archive stored and relays it from there.
          await coordination.withLock(
            `archive:${key}`,
            { waitMs: downloadLimits(registry.config).deadlineMs },
            async () => {
              const stored = await registry.store.read(module, version, checksum);
              if (stored) {
                await relay(stored, shared);
                return { bytes: stored.size, source: 'another replica' };
              }
              // The holder before us failed: its answer, not another upstream request.
              const failed = await coordination.get(`${FAILED_PREFIX}${key}`);
              if (failed !== undefined) throw sharedFailure(failed);
              try {
                return await fetchFromUpstream();
              } catch (error) {
                if (!shared.isVerified) await this.shareFailure(coordination, key, label, error);
                throw error;
              }
            },
          )
        : await fetchFromUpstream();
      logger?.info(
        { module, version, source, bytes, ms: Math.round(performance.now() - started) },
        'archive fetched from upstream',
      );
    } catch (error) {
      if (shared.isVerified) {
        // The clients have their bytes; only storing them failed (disk full, permissions).
        logger?.error({ err: error, module, version }, 'archive verified but not stored');
        return;
      }
      const answer = httpErrorFor(label, error);
      const absent =
        error instanceof ArchiveFetchError
          ? error.kind === 'not-found'
          : error instanceof SharedFailure && error.absent;
      if (absent) this.notFound?.set(key, answer);
      logger?.warn(
        { module, version, status: answer.status, reason: describeError(error) },
        'pull-through failed',
      );
      shared.fail(answer);
    }
  }

  /**
   * Tells the replicas waiting for this archive's lease how its download failed, so they answer
   * the same at once: a 404 for as long as our own negative cache keeps it, anything else briefly.
   */
  private async shareFailure(
    coordination: Coordination,
    key: string,
    label: string,
    error: unknown,
  ): Promise<void> {
    const answer = httpErrorFor(label, error);
    const absent = error instanceof ArchiveFetchError && error.kind === 'not-found';
    const ms = absent ? Math.max(this.options.negativeTtlMs, SHARED_FAILURE_MS) : SHARED_FAILURE_MS;
    const record = { status: answer.status, message: answer.message, headers: answer.headers, absent };
    await coordination
      .setExpiring(`${FAILED_PREFIX}${key}`, JSON.stringify(record), ms)
      .catch(() => undefined);
  }
}

/** Where a failed download's answer waits for the replicas that waited for it. */
const FAILED_PREFIX = 'archive-failed:';
/** How long another failure's answer is shared: the waiting replicas read it within this. */
const SHARED_FAILURE_MS = 5000;

/** Another replica's failed download of this archive, as its clients were answered. */
class SharedFailure extends HttpError {
  constructor(
    status: number,
    message: string,
    headers: Record<string, string>,
    /** The sources said they have no such archive (kept like a 404 of our own). */
    readonly absent: boolean,
  ) {
    super(status, message, headers);
  }
}

function sharedFailure(text: string): SharedFailure {
  try {
    const { status, message, headers, absent } = JSON.parse(text) as {
      status: number;
      message: string;
      headers: Record<string, string>;
      absent: boolean;
    };
    return new SharedFailure(status, message, headers, absent);
  } catch {
    return new SharedFailure(502, 'the archive could not be fetched (see the server log)', {}, false);
  }
}

/** Feeds the clients waiting on `shared` from the store, as a download would. */
async function relay(stored: BlobRead, shared: SharedDownload): Promise<void> {
  shared.started(stored.size);
  for await (const chunk of stored.body) shared.data(chunk as Buffer);
  shared.verified(); // stored means verified
}

/** 504 when the upstream was too slow, else 502; Retry-After while every source is skipped. */
function httpErrorFor(label: string, error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  // The bucket or Redis is down, or the replica holding this archive's lease took too long.
  if (isRegistryError(error) && (error.code === 'UNAVAILABLE' || error.code === 'LOCKED')) {
    const retry = { 'Retry-After': BUSY_RETRY_AFTER_SECONDS };
    return new HttpError(503, `${label}: the registry's storage or coordination is unavailable`, retry);
  }
  if (!(error instanceof ArchiveFetchError)) {
    // Local trouble (a full disk, say): the details are for the log, not for clients.
    return new HttpError(502, `${label}: the archive could not be fetched (see the server log)`);
  }
  const headers: Record<string, string> = {};
  if (error.retryAt !== undefined) {
    headers['Retry-After'] = String(Math.max(1, Math.ceil((error.retryAt - Date.now()) / 1000)));
  }
  return new HttpError(error.kind === 'timeout' ? 504 : 502, error.clientMessage, headers);
}
