import type { Logger } from 'pino';
import {
  describeSymbolsRefresh,
  readSymbolsRecord,
  refreshSymbols,
  type SymbolsRefresh,
  symbolsFiles,
} from '../registry/symbols-store.js';
import type { BlobStore } from '../store/blob/blob-store.js';
import type { DownloadLimits } from '../upstream/archive-download.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { UpstreamSource } from '../upstream/upstream-source.js';

export interface SymbolsRefresherOptions {
  blobs: BlobStore;
  pool: UpstreamPool;
  /** This process's temp folder (data/tmp/<host>-<pid>). */
  tmpDir: string;
  /** A source that answered is asked again after this long at the earliest ([mirror] sync_interval). */
  intervalMs: number;
  /** A source that failed is asked again after this long (shorter: a blip must not cost an hour). */
  retryMs: number;
  limits: DownloadLimits;
  logger: Logger | undefined;
  now?: () => number;
}

/**
 * Pull-through for symbols.zip: nothing is fetched until a client asks. Then every enabled
 * source whose copy is older than the sync interval is asked again (If-None-Match), all in one
 * flight that concurrent requests share. A request waits for the flight only when some source
 * was never asked (there may be nothing to serve yet); otherwise it gets the stored copy at
 * once and the flight refreshes it for the next client.
 */
export class SymbolsRefresher {
  private flight: Promise<SymbolsRefresh[]> | undefined;
  private checking: Promise<Promise<SymbolsRefresh[]> | undefined> | undefined;
  /** When each source was last asked by this process, and whether that failed. */
  private readonly attempts = new Map<string, { at: number; failed: boolean }>();
  private readonly now: () => number;

  constructor(private readonly options: SymbolsRefresherOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Whether the last attempt at some source failed (a 502 is then more honest than a 404). */
  get lastFailed(): boolean {
    return [...this.attempts.values()].some((attempt) => attempt.failed);
  }

  /** Starts a refresh if one is due; resolves when the caller may serve what is stored. */
  async beforeServing(): Promise<void> {
    // The check itself is shared too: requests arriving together must not each start a flight.
    if (!this.flight && !this.checking) {
      this.checking = this.startIfDue().finally(() => {
        this.checking = undefined;
      });
    }
    const flight = this.flight ?? (await this.checking);
    // Wait only while some source was never asked: there may be nothing to serve yet.
    if (flight && (await this.anyNeverAsked(this.options.pool.upstreams))) await flight;
  }

  private async startIfDue(): Promise<Promise<SymbolsRefresh[]> | undefined> {
    if (this.flight) return this.flight;
    const due = await this.dueSources();
    return due.length === 0 ? undefined : this.refresh(due);
  }

  private refresh(due: UpstreamSource[]): Promise<SymbolsRefresh[]> {
    const { blobs, pool, tmpDir, limits, logger } = this.options;
    const flight = refreshSymbols(blobs, due, { tmpDir, dispatcherFor: pool.dispatcherFor, limits })
      .then((results) => {
        for (const result of results) {
          this.attempts.set(result.source, { at: this.now(), failed: result.status === 'failed' });
          if (result.status === 'failed') logger?.warn(describeSymbolsRefresh(result));
          else logger?.info(describeSymbolsRefresh(result));
        }
        return results;
      })
      .finally(() => {
        this.flight = undefined;
      });
    this.flight = flight;
    return flight;
  }

  /** Sources not asked within the interval (by this process, or by a mirror, per their record). */
  private async dueSources(): Promise<UpstreamSource[]> {
    const { blobs, pool, intervalMs, retryMs } = this.options;
    const now = this.now();
    const due: UpstreamSource[] = [];
    for (const upstream of pool.upstreams) {
      const attempt = this.attempts.get(upstream.name);
      if (attempt && now - attempt.at < (attempt.failed ? retryMs : intervalMs)) continue;
      const record = await readSymbolsRecord(symbolsFiles(blobs, upstream.name));
      const fresh =
        record && record.url === upstream.symbolsUrl && now - Date.parse(record.checked_at) < intervalMs;
      if (!fresh) due.push(upstream);
    }
    return due;
  }

  private async anyNeverAsked(upstreams: UpstreamSource[]): Promise<boolean> {
    for (const upstream of upstreams) {
      if (this.attempts.has(upstream.name)) continue;
      const record = await readSymbolsRecord(symbolsFiles(this.options.blobs, upstream.name));
      if (!record || record.url !== upstream.symbolsUrl) return true;
    }
    return false;
  }
}
