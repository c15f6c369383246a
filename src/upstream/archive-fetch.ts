import type { Dispatcher } from 'undici';
import { describeError, RegistryError } from '../core/errors.js';
import {
  backoffDelay,
  DownloadError,
  type DownloadLimits,
  type DownloadObserver,
  downloadArchive,
} from './archive-download.js';
import { PackFailure, storePackedArchive } from './packed-archive.js';
import type { SourceHealth } from './source-health.js';
import type { UpstreamSource } from './upstream-source.js';

export interface ArchiveTarget {
  module: string;
  version: string;
  checksum: string;
  /** Keeps a verified temp file (consumes it): only bytes with this checksum ever reach it. */
  keep(file: string): Promise<void>;
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
  limits?: DownloadLimits;
  onRetry?(label: string, attempt: number, reason: string): void;
  /** Each request sent to a source, and each that the source failed (metrics). */
  onUpstream?(source: string, event: 'request' | 'error'): void;
}

/** How a fetch failed overall, for a status code: all timed out, all said 404, all skipped... */
export type FetchFailureKind = 'timeout' | 'not-found' | 'unavailable' | 'failed';

export class ArchiveFetchError extends RegistryError {
  constructor(
    /** Everything that went wrong, URLs included: for the log and the terminal. */
    message: string,
    /** The same, naming sources but no URLs: for HTTP clients of a pull-through server. */
    readonly clientMessage: string,
    readonly kind: FetchFailureKind,
    /** Earliest time a skipped source will be tried again, for Retry-After. */
    readonly retryAt?: number,
  ) {
    super('UPSTREAM', message);
  }
}

/** What an upstream did wrong, in a few words and without its URL. */
function shortReason(error: DownloadError): string {
  if (error.code === 'CHECKSUM') return 'sent bytes that do not match the checksum';
  if (error.timeout) return 'timed out';
  if (error.status !== undefined) return `answered HTTP ${error.status}`;
  if (error.unreachable) return 'could not be reached';
  return 'broke off the download';
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
  const reasons: string[] = [];
  const outcomes: Array<'timeout' | 'not-found' | 'skipped' | 'other'> = [];
  let retryAt: number | undefined;
  for (const upstream of options.sources) {
    if (upstream.packsArchives) {
      // Packed from the repository fetched here: no network, so no breaker and no retries.
      try {
        const bytes = await storePackedArchive(upstream, target, options.tmpDir, options.observer);
        return { bytes, source: upstream.name };
      } catch (error) {
        if (!(error instanceof PackFailure)) throw error;
        errors.push(`${module}@${version}: ${error.reason}`);
        reasons.push(error.reason);
        outcomes.push(error.absent ? 'not-found' : 'other');
        continue;
      }
    }
    const health = options.health?.(upstream.name);
    const label = `${module}@${version} from ${upstream.name}`;
    let lastFailure:
      | { message: string; reason: string; outcome: 'timeout' | 'not-found' | 'other' }
      | undefined;
    for (let attempt = 0; ; attempt++) {
      if (health && !health.breaker.allow()) {
        if (lastFailure) {
          // Our own failed attempts opened the circuit: report what they met, not a skip.
          errors.push(lastFailure.message);
          reasons.push(lastFailure.reason);
          outcomes.push(lastFailure.outcome);
          break;
        }
        const at = health.breaker.retryAt;
        retryAt = Math.min(retryAt ?? Number.POSITIVE_INFINITY, at ?? Date.now());
        const since = health.report().failing_since;
        const unavailable = `source "${upstream.name}" is unavailable${since ? ` (failing since ${since})` : ''}; not asked`;
        errors.push(unavailable);
        reasons.push(unavailable);
        outcomes.push('skipped');
        break;
      }
      try {
        const url = upstream.archiveUrl(module, version);
        options.onUpstream?.(upstream.name, 'request');
        const bytes = await downloadArchive({
          url,
          headers: upstream.archiveHeaders(url),
          expectedChecksum: checksum,
          keep: target.keep,
          tmpDir: options.tmpDir,
          dispatcher: options.dispatcherFor(upstream),
          label,
          ...(options.observer ? { observer: options.observer } : {}),
          ...(options.limits ? { limits: options.limits } : {}),
        });
        health?.succeeded();
        return { bytes, source: upstream.name };
      } catch (error) {
        const message = upstream.redact(describeError(error));
        if (!(error instanceof DownloadError)) throw error; // local trouble (disk): not the upstream's
        // A 404 is an answer, not a failure of the source.
        if (error.status !== 404) options.onUpstream?.(upstream.name, 'error');
        // The breaker hears at once when the host gives no answer at all; a bad answer (5xx,
        // short body) may be about this one archive, so it counts once, after the retries.
        const reason = `source "${upstream.name}" ${shortReason(error)}`;
        if (error.unreachable) health?.failed(`archive download: ${shortReason(error)}`);
        else if (!error.retryable) health?.answered(); // it answered: the archive is the problem
        lastFailure = {
          message,
          reason,
          outcome: error.timeout ? 'timeout' : error.status === 404 ? 'not-found' : 'other',
        };
        if (error.retryable && attempt < options.retries) {
          options.onRetry?.(label, attempt + 1, message);
          await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
          continue;
        }
        if (error.retryable && !error.unreachable) health?.failed(`archive download: ${shortReason(error)}`);
        errors.push(message);
        reasons.push(reason);
        outcomes.push(lastFailure.outcome);
        break;
      }
    }
  }
  const none = `${module}@${version}: no source can deliver it`;
  throw new ArchiveFetchError(
    errors.join('; ') || none,
    reasons.length > 0 ? `${module}@${version}: ${reasons.join('; ')}` : none,
    failureKind(outcomes),
    retryAt,
  );
}

function failureKind(outcomes: string[]): FetchFailureKind {
  if (outcomes.length > 0 && outcomes.every((o) => o === 'not-found')) return 'not-found';
  if (outcomes.length > 0 && outcomes.every((o) => o === 'skipped')) return 'unavailable';
  if (outcomes.includes('timeout')) return 'timeout';
  return 'failed';
}
