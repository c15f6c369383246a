import type { RegistryConfig, SourceConfig } from '../config/schema.js';
import { parseDuration } from '../core/duration.js';
import { describeError, isRegistryError } from '../core/errors.js';
import { archiveLimits } from '../hosted/publish.js';
import type { MergedCatalog } from '../index/merged-catalog.js';
import { type SourceCatalog, skippedEntriesWarning } from '../index/source-catalog.js';
import type { DownloadLimits } from '../upstream/archive-download.js';
import { type SourceTimeouts, UpstreamSource } from '../upstream/upstream-source.js';
import { type RegistryLayout, sourceIndexDir } from './layout.js';
import { enabledSources, type Registry } from './registry.js';
import { SourcePolicy, shadowWarning } from './source-policy.js';

/** One UpstreamSource per enabled source, highest priority first. */
export function enabledUpstreams(config: RegistryConfig, layout: RegistryLayout): UpstreamSource[] {
  // A git source packs archives as a publish would, under the same limits.
  const limits = archiveLimits({ config });
  return enabledSources(config).map(
    (s) => new UpstreamSource(s, sourceIndexDir(layout, s.name), sourceTimeouts(config, s), limits),
  );
}

/** A source's own timeouts, else [mirror] timeout_seconds (connecting: at most 10 s of it). */
export function sourceTimeouts(config: RegistryConfig, source: SourceConfig): SourceTimeouts {
  const fallback = config.mirror.timeout_seconds * 1000;
  const own = (value: string | undefined) => (value === undefined ? undefined : parseDuration(value));
  return {
    connectMs: own(source.connect_timeout) ?? Math.min(fallback, 10_000),
    readMs: own(source.read_timeout) ?? fallback,
  };
}

export interface IndexLog {
  info(message: string): void;
  warn(message: string): void;
}

/**
 * Fetches every enabled source's index, in parallel. The selected source must answer; another
 * source that is down only costs a warning while its last fetched copy can stand in (so an
 * offline mirror keeps working), but wrong credentials are always an error.
 */
export async function refreshIndexes(
  upstreams: UpstreamSource[],
  selected: SourceConfig,
  log: IndexLog,
): Promise<SourceCatalog[]> {
  const results = await Promise.allSettled(upstreams.map((u) => u.fetchIndex((m) => log.warn(m))));
  const catalogs: SourceCatalog[] = [];
  for (const [i, upstream] of upstreams.entries()) {
    const result = results[i] as PromiseSettledResult<string>;
    let commit: string | undefined;
    if (result.status === 'fulfilled') {
      commit = result.value;
      log.info(`source "${upstream.name}": index at ${commit.slice(0, 12)}`);
    } else {
      const error = result.reason as unknown;
      if (upstream.name === selected.name || (isRegistryError(error) && error.code === 'AUTH')) throw error;
      commit = await upstream.fetchedCommit();
      log.warn(
        `${describeError(error)}; ${commit ? `using its last fetched index (${commit.slice(0, 12)})` : 'its modules are left out of this run'}`,
      );
    }
    if (commit) catalogs.push(await readCatalogReporting(upstream, commit, log));
  }
  return catalogs;
}

/** Reads a catalog; lines `moon` would skip are skipped here too, and counted in one warning. */
async function readCatalogReporting(
  upstream: UpstreamSource,
  commit: string,
  log: IndexLog,
): Promise<SourceCatalog> {
  const skipped: string[] = [];
  const catalog = await upstream.readCatalog(commit, (message) => skipped.push(message));
  if (skipped.length > 0) log.warn(skippedEntriesWarning(upstream.name, skipped));
  return catalog;
}

/** The last fetched index of every enabled source, without any network access. */
export async function cachedCatalogs(upstreams: UpstreamSource[], log: IndexLog): Promise<SourceCatalog[]> {
  const catalogs: SourceCatalog[] = [];
  for (const upstream of upstreams) {
    const commit = await upstream.fetchedCommit();
    if (commit) catalogs.push(await readCatalogReporting(upstream, commit, log));
    else log.warn(`source "${upstream.name}" was never fetched; run \`moonbit-registry mirror\` first`);
  }
  return catalogs;
}

/** [mirror] max_archive_size and archive_timeout, for every archive download. */
export function downloadLimits(config: RegistryConfig): DownloadLimits {
  return {
    maxBytes: config.mirror.max_archive_size,
    deadlineMs: parseDuration(config.mirror.archive_timeout) ?? 600_000,
  };
}

/**
 * The merged view of the upstreams' `catalogs` and what was published here, by the source
 * policy: priorities, each source's include/exclude, and `[hosted] exclusive`, whose violations
 * are warned about once per source and module.
 */
export async function mergeWithHosted(
  registry: Registry,
  catalogs: SourceCatalog[],
  log: IndexLog,
): Promise<MergedCatalog> {
  const hosted = await registry.hosted.catalog((message) => log.warn(`published modules: ${message}`));
  return new SourcePolicy(registry.config).merge(hosted ? [hosted, ...catalogs] : catalogs, (attempt) =>
    log.warn(shadowWarning(attempt)),
  );
}
