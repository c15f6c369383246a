import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { type AssetPackage, describeAssetPackage } from '../core/asset-path.js';
import { describeError } from '../core/errors.js';
import type { Registry } from '../registry/registry.js';
import { downloadLimits } from '../registry/source-indexes.js';
import type { AssetStore } from '../store/asset-store.js';
import { DownloadError } from '../upstream/archive-download.js';
import { fetchAsset } from '../upstream/asset-fetch.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { HttpError } from './http-error.js';

export interface AssetPullThroughOptions {
  registry: Registry;
  pool: UpstreamPool;
  store: AssetStore;
  /** This process's temp folder (data/tmp/<host>-<pid>). */
  tmpDir: string;
  /** How long a source's "no asset" is remembered; 0 remembers nothing. */
  absentTtlMs: number;
  logger: Logger | undefined;
  onUpstream?(source: string, event: 'request' | 'error'): void;
}

/**
 * Pull-through for prebuilt wasm: a listed version's asset that is not stored is fetched from
 * the source whose line won, verified against its `.sha256` and stored; concurrent requests for
 * one package share one fetch, and a 404 is remembered for a while (most packages have none,
 * and `moon` asks again at every run).
 */
export class AssetPullThrough {
  private readonly inflight = new Map<string, Promise<'stored' | 'absent'>>();
  private readonly absent: LRUCache<string, true> | undefined;

  constructor(private readonly options: AssetPullThroughOptions) {
    if (options.absentTtlMs > 0) this.absent = new LRUCache({ max: 10_000, ttl: options.absentTtlMs });
  }

  /** Fetches in progress, for /health. */
  get inProgress(): number {
    return this.inflight.size;
  }

  /** `checksum`: the served line's, which names the sources that may answer. */
  fetch(pkg: AssetPackage, checksum: string): Promise<'stored' | 'absent'> {
    const key = describeAssetPackage(pkg);
    if (this.absent?.get(key)) return Promise.resolve('absent');
    let flight = this.inflight.get(key);
    if (!flight) {
      flight = this.download(pkg, checksum, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, flight);
    }
    return flight;
  }

  private async download(pkg: AssetPackage, checksum: string, key: string): Promise<'stored' | 'absent'> {
    const { pool, registry, logger, store } = this.options;
    // The winning line's source; a version published here, or from a bundle or git source, has
    // no upstream serving prebuilt wasm.
    const source = pool.sourcesFor(pkg.module, pkg.version, checksum)[0];
    if (!source?.hasHttpService) {
      this.absent?.set(key, true);
      return 'absent';
    }
    if (await store.has(pkg)) return 'stored'; // stored meanwhile (a mirror, another process)
    const started = performance.now();
    this.options.onUpstream?.(source.name, 'request');
    try {
      const fetched = await fetchAsset(source, pkg, {
        store,
        tmpDir: this.options.tmpDir,
        dispatcher: pool.dispatcherFor(source),
        limits: downloadLimits(registry.config),
        retries: registry.config.mirror.retries,
      });
      if (fetched.result === 'absent') {
        this.absent?.set(key, true);
        return 'absent';
      }
      logger?.info(
        {
          asset: key,
          source: source.name,
          bytes: fetched.bytes,
          ms: Math.round(performance.now() - started),
        },
        'prebuilt wasm fetched from upstream',
      );
      return 'stored';
    } catch (error) {
      this.options.onUpstream?.(source.name, 'error');
      logger?.warn(
        { asset: key, reason: source.redact(describeError(error)) },
        'prebuilt wasm pull-through failed',
      );
      throw httpErrorFor(key, source.name, error);
    }
  }
}

function httpErrorFor(key: string, source: string, error: unknown): HttpError {
  if (!(error instanceof DownloadError)) {
    return new HttpError(502, `${key}: the prebuilt wasm could not be fetched (see the server log)`);
  }
  if (error.code === 'CHECKSUM') {
    return new HttpError(
      502,
      `${key}: source "${source}" sent a wasm that does not match its .sha256; not stored`,
    );
  }
  const what = error.timeout ? 'timed out' : error.status ? `answered HTTP ${error.status}` : 'failed';
  return new HttpError(error.timeout ? 504 : 502, `${key}: source "${source}" ${what}`);
}
