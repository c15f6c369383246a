import type { Dispatcher } from 'undici';
import { describeError, RegistryError } from '../core/errors.js';
import { backoffDelay, DownloadError, type DownloadObserver, downloadArchive } from './archive-download.js';
import type { SourceHealth } from './source-health.js';
import type { UpstreamSource } from './upstream-source.js';

export interface ArchiveTarget {
  module: string;
  version: string;
  checksum: string;
  /** Final store path; only bytes with this checksum ever reach it. */
  destination: string;
}

export interface ArchiveFetchOptions {
  /** Sources that publish this very module@version and checksum, in the order to try them. */
  sources: UpstreamSource[];
  tmpDir: string;
  dispatcherFor(source: UpstreamSource): Dispatcher;
  /** Further attempts per source after a passing failure (5xx, reset, timeout, short body). */
  retries: number;
  /** With health, each source's circuit breaker is asked first and told how it went. */
  health?: (source: string) => SourceHealth | undefined;
  observer?: DownloadObserver;
  onRetry?(label: string, attempt: number, reason: string): void;
}

/** How a fetch failed overall, for a status code: all timed out, all said 404, all skipped... */
export type FetchFailureKind = 'timeout' | 'not-found' | 'unavailable' | 'failed';

export class ArchiveFetchError extends RegistryError {
  constructor(
    message: string,
    readonly kind: FetchFailureKind,
    /** Earliest time a skipped source will be tried again, for Retry-After. */
    readonly retryAt?: number,
  ) {
    super('UPSTREAM', message);
  }
}

/**
 * Downloads one archive: each source in turn, retrying passing failures with backoff, until one
 * delivers bytes with the expected checksum. Used by `mirror` and by `serve`'s pull-through.
 */
export async function fetchArchive(
  target: ArchiveTarget,
  options: ArchiveFetchOptions,
): Promise<{ bytes: number; source: string }> {
  const { module, version, checksum } = target;
  const errors: string[] = [];
  const outcomes: Array<'timeout' | 'not-found' | 'skipped' | 'other'> = [];
  let retryAt: number | undefined;
  for (const upstream of options.sources) {
    const health = options.health?.(upstream.name);
    const label = `${module}@${version} from ${upstream.name}`;
    for (let attempt = 0; ; attempt++) {
      if (health && !health.breaker.allow()) {
        const at = health.breaker.retryAt;
        retryAt = Math.min(retryAt ?? Number.POSITIVE_INFINITY, at ?? Date.now());
        const since = health.report().failing_since;
        errors.push(
          `source "${upstream.name}" is unavailable${since ? ` (failing since ${since})` : ''}; not asked`,
        );
        outcomes.push('skipped');
        break;
      }
      try {
        const url = upstream.archiveUrl(module, version);
        const bytes = await downloadArchive({
          url,
          headers: upstream.archiveHeaders(url),
          expectedChecksum: checksum,
          destination: target.destination,
          tmpDir: options.tmpDir,
          dispatcher: options.dispatcherFor(upstream),
          label,
          ...(options.observer ? { observer: options.observer } : {}),
        });
        health?.succeeded();
        return { bytes, source: upstream.name };
      } catch (error) {
        const message = upstream.redact(describeError(error));
        if (!(error instanceof DownloadError)) throw error; // local trouble (disk): not the upstream's
        // The breaker hears at once when the host gives no answer at all; a bad answer (5xx,
        // short body) may be about this one archive, so it counts once, after the retries.
        if (error.unreachable) health?.failed(message);
        else if (!error.retryable) health?.succeeded(); // it answered: the archive is the problem
        if (error.retryable && attempt < options.retries) {
          options.onRetry?.(label, attempt + 1, message);
          await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
          continue;
        }
        if (error.retryable && !error.unreachable) health?.failed(message);
        errors.push(message);
        outcomes.push(error.timeout ? 'timeout' : error.status === 404 ? 'not-found' : 'other');
        break;
      }
    }
  }
  const message = errors.join('; ') || `${module}@${version}: no source can deliver it`;
  throw new ArchiveFetchError(message, failureKind(outcomes), retryAt);
}

function failureKind(outcomes: string[]): FetchFailureKind {
  if (outcomes.length > 0 && outcomes.every((o) => o === 'not-found')) return 'not-found';
  if (outcomes.length > 0 && outcomes.every((o) => o === 'skipped')) return 'unavailable';
  if (outcomes.includes('timeout')) return 'timeout';
  return 'failed';
}
