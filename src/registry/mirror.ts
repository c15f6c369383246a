import { rm } from 'node:fs/promises';
import pLimit from 'p-limit';
import type { SourceConfig } from '../config/schema.js';
import { describeError, isRegistryError, RegistryError } from '../core/errors.js';
import { moduleKey } from '../core/module-name.js';
import type { IndexEntry } from '../index/index-file.js';
import { MergedCatalog, type SourcedEntry } from '../index/merged-catalog.js';
import type { SourceCatalog } from '../index/source-catalog.js';
import { backoffDelay, DownloadError, downloadArchive } from '../upstream/archive-download.js';
import { createHttpAgent } from '../upstream/http-agent.js';
import { UpstreamSource } from '../upstream/upstream-source.js';
import { sourceIndexDir } from './layout.js';
import { acquireRegistryLock } from './lock.js';
import { type Provenance, readProvenance, writeProvenance } from './provenance.js';
import { enabledSources, findSource, type Registry } from './registry.js';
import { type Selection, selectVersions, type VersionRef } from './select-versions.js';

export interface MirrorOptions {
  patterns: string[];
  full: boolean;
  strict: boolean;
  /** Source whose index the patterns match; the default source when absent. */
  source?: string;
  reporter: MirrorReporter;
}

/** How the CLI shows progress: a bar, log lines, or nothing. */
export interface MirrorReporter {
  info(message: string): void;
  warn(message: string): void;
  downloadsStarted(total: number): void;
  downloadFinished(label: string, bytes: number): void;
  downloadRetrying(label: string, attempt: number, reason: string): void;
  downloadFailed(label: string, reason: string): void;
  downloadsFinished(): void;
}

export interface MirrorFailure {
  module: string;
  version: string;
  error: string;
}

export interface MirrorSummary {
  /** Modules and versions this run asked for (matches plus dependencies). */
  modules: number;
  versions: number;
  downloaded: number;
  /** Already present and verified: not downloaded again. */
  skipped: number;
  failed: number;
  bytes: number;
  seconds: number;
  failures: MirrorFailure[];
  warnings: string[];
  /** What the served index lists after this run. */
  served: { modules: number; versions: number; commit: string; changed: boolean };
  /** Per source: versions served from it, and archives downloaded from it this run. */
  sources: Record<string, { served: number; downloaded: number }>;
}

interface PlannedVersion extends VersionRef {
  winner: SourcedEntry;
  present: boolean;
}

/**
 * One mirror run: refresh the sources' indexes, pick versions, download what is missing,
 * then publish the served index in one commit. The index lists only versions whose archives
 * are on disk, so a client is never told about something it cannot download.
 */
export async function mirror(registry: Registry, options: MirrorOptions): Promise<MirrorSummary> {
  const started = performance.now();
  const { config, layout } = registry;
  const { reporter } = options;
  const selected = selectedSource(registry, options.source);
  const sources = enabledSources(config);
  const timeoutMs = config.mirror.timeout_seconds * 1000;
  const upstreams = new Map(
    sources.map((s) => [s.name, new UpstreamSource(s, sourceIndexDir(layout, s.name), timeoutMs)] as const),
  );
  // Missing credentials are a configuration error: say so before anything is fetched or written.
  for (const upstream of upstreams.values()) upstream.headers();

  const release = await acquireRegistryLock(layout.lockTarget, 'mirror');
  try {
    await rm(layout.tmpDir, { recursive: true, force: true }); // leftovers of a killed run
    const catalogs = await refreshIndexes([...upstreams.values()], selected, reporter);
    const merged = new MergedCatalog(catalogs);
    const roots =
      options.full && !options.source ? catalogs : catalogs.filter((c) => c.source === selected.name);
    const selection = selectVersions(roots, merged, options);
    for (const warning of selection.warnings) reporter.warn(warning);
    reporter.info(
      `${selection.versions.size} versions selected (${selection.matched} matched, ${selection.versions.size - selection.matched} dependencies)`,
    );

    const plan = await planVersions(registry, merged, selection);
    const missing = plan.filter((p) => !p.present);
    const skipped = plan.filter(
      (p) => p.present && selection.versions.has(moduleKey(p.module, p.version)),
    ).length;
    const agent = createHttpAgent({ connections: config.mirror.concurrency, timeoutMs });
    const downloads = { count: 0, bytes: 0, bySource: new Map<string, number>() };
    const failures: MirrorFailure[] = [];
    try {
      reporter.downloadsStarted(missing.length);
      const limit = pLimit(config.mirror.concurrency);
      await Promise.all(
        missing.map((item) =>
          limit(async () => {
            const label = `${item.module}@${item.version}`;
            try {
              const { bytes, source } = await fetchArchive(
                registry,
                merged,
                upstreams,
                item,
                agent,
                reporter,
              );
              item.present = true;
              downloads.count++;
              downloads.bytes += bytes;
              downloads.bySource.set(source, (downloads.bySource.get(source) ?? 0) + 1);
              reporter.downloadFinished(label, bytes);
            } catch (error) {
              const message = describeError(error);
              failures.push({ module: item.module, version: item.version, error: message });
              reporter.downloadFailed(label, message);
            }
          }),
        ),
      );
    } finally {
      reporter.downloadsFinished();
      await agent.close();
    }

    const served = plan.filter((p) => p.present);
    const previous = await readProvenance(layout.provenanceFile);
    const provenance: Provenance = new Map(
      served.map((p) => [
        moduleKey(p.module, p.version),
        { source: p.winner.source, checksum: p.winner.entry.checksum },
      ]),
    );
    const result = await registry.servedIndex.publish(
      servedFiles(merged, served),
      commitMessage(previous, provenance, selection, options),
    );
    await writeProvenance(layout.provenanceFile, provenance);

    const selectedModules = new Set([...selection.versions.values()].map((v) => v.module));
    const sourceStats: MirrorSummary['sources'] = {};
    for (const source of sources)
      sourceStats[source.name] = { served: 0, downloaded: downloads.bySource.get(source.name) ?? 0 };
    for (const p of served) {
      const stats = sourceStats[p.winner.source];
      if (stats) stats.served++;
    }
    failures.sort((a, b) => moduleKey(a.module, a.version).localeCompare(moduleKey(b.module, b.version)));
    return {
      modules: selectedModules.size,
      versions: selection.versions.size,
      downloaded: downloads.count,
      skipped,
      failed: failures.length,
      bytes: downloads.bytes,
      seconds: (performance.now() - started) / 1000,
      failures,
      warnings: selection.warnings,
      served: {
        modules: new Set(served.map((p) => p.module)).size,
        versions: served.length,
        commit: result.commit,
        changed: result.changed,
      },
      sources: sourceStats,
    };
  } finally {
    await release();
  }
}

function selectedSource(registry: Registry, name: string | undefined): SourceConfig {
  const { config } = registry;
  const chosen = name ?? config.default_source;
  if (!chosen) {
    throw new RegistryError('CONFIG', 'no source given and no default_source configured', {
      hint: 'pass -s SOURCE or run `moonbit-registry source default NAME`',
    });
  }
  const source = findSource(config, chosen);
  if (!source.enabled) {
    throw new RegistryError('CONFIG', `source "${source.name}" is disabled`, {
      hint: `run \`moonbit-registry source enable ${source.name}\` first`,
    });
  }
  return source;
}

/**
 * Fetches every enabled source's index. The selected source must answer; another source that
 * is down only costs a warning while its last fetched copy can stand in (offline mirrors keep
 * working), but wrong credentials are always an error.
 */
async function refreshIndexes(
  upstreams: UpstreamSource[],
  selected: SourceConfig,
  reporter: MirrorReporter,
): Promise<SourceCatalog[]> {
  const results = await Promise.allSettled(upstreams.map((u) => u.fetchIndex()));
  const catalogs: SourceCatalog[] = [];
  for (const [i, upstream] of upstreams.entries()) {
    const result = results[i] as PromiseSettledResult<string>;
    let commit: string | undefined;
    if (result.status === 'fulfilled') {
      commit = result.value;
      reporter.info(`source "${upstream.name}": index at ${commit.slice(0, 12)}`);
    } else {
      const error = result.reason as unknown;
      if (upstream.name === selected.name || (isRegistryError(error) && error.code === 'AUTH')) throw error;
      commit = await upstream.fetchedCommit();
      reporter.warn(
        `${describeError(error)}; ${commit ? `using its last fetched index (${commit.slice(0, 12)})` : 'its modules are left out of this run'}`,
      );
    }
    if (commit) catalogs.push(await upstream.readCatalog(commit));
  }
  return catalogs;
}

/**
 * Everything the served index should list after this run: the versions selected now, plus
 * every version mirrored before (an archive of it is on disk from any source). Each gets the
 * winning source's line; it is present if an archive with that line's checksum is on disk.
 */
async function planVersions(
  registry: Registry,
  merged: MergedCatalog,
  selection: Selection,
): Promise<PlannedVersion[]> {
  const limit = pLimit(64);
  const checks: Array<Promise<PlannedVersion | undefined>> = [];
  for (const module of merged.modules()) {
    for (const version of merged.versions(module)) {
      checks.push(
        limit(async () => {
          const candidates = merged.candidates(module, version);
          const winner = candidates[0] as SourcedEntry;
          const present = await registry.store.has(module, version, winner.entry.checksum);
          if (present || selection.versions.has(moduleKey(module, version)))
            return { module, version, winner, present };
          for (const other of candidates.slice(1)) {
            if (await registry.store.has(module, version, other.entry.checksum)) {
              return { module, version, winner, present: false };
            }
          }
          return undefined;
        }),
      );
    }
  }
  return (await Promise.all(checks)).filter((p): p is PlannedVersion => p !== undefined);
}

/**
 * Downloads the winning archive, retrying passing failures with backoff, then falling back to
 * other sources that publish the very same checksum. Bytes that do not match the winning
 * line's checksum are never kept.
 */
async function fetchArchive(
  registry: Registry,
  merged: MergedCatalog,
  upstreams: Map<string, UpstreamSource>,
  item: PlannedVersion,
  dispatcher: ReturnType<typeof createHttpAgent>,
  reporter: MirrorReporter,
): Promise<{ bytes: number; source: string }> {
  const { module, version } = item;
  const checksum = item.winner.entry.checksum;
  const retries = registry.config.mirror.retries;
  const errors: string[] = [];
  for (const candidate of merged.sourcesWithChecksum(module, version, checksum)) {
    const upstream = upstreams.get(candidate.source);
    if (!upstream) continue;
    const label = `${module}@${version} from ${upstream.name}`;
    for (let attempt = 0; ; attempt++) {
      try {
        const bytes = await downloadArchive({
          url: upstream.archiveUrl(module, version),
          headers: upstream.headers(),
          expectedChecksum: checksum,
          destination: registry.store.pathFor(module, version, checksum),
          tmpDir: registry.layout.tmpDir,
          dispatcher,
          label,
        });
        return { bytes, source: upstream.name };
      } catch (error) {
        const message = upstream.redact(describeError(error));
        if (error instanceof DownloadError && error.retryable && attempt < retries) {
          reporter.downloadRetrying(label, attempt + 1, message);
          await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
          continue;
        }
        errors.push(message);
        break;
      }
    }
  }
  throw new RegistryError('UPSTREAM', errors.join('; ') || `${module}@${version}: no source can deliver it`);
}

/** module -> served lines, in the merged catalog's stable order. */
function servedFiles(merged: MergedCatalog, served: PlannedVersion[]): Map<string, IndexEntry[]> {
  const byModule = new Map<string, Map<string, IndexEntry>>();
  for (const p of served) {
    let versions = byModule.get(p.module);
    if (!versions) {
      versions = new Map();
      byModule.set(p.module, versions);
    }
    versions.set(p.version, p.winner.entry);
  }
  const files = new Map<string, IndexEntry[]>();
  for (const [module, versions] of [...byModule].sort(([a], [b]) => (a < b ? -1 : 1))) {
    files.set(
      module,
      merged
        .versions(module)
        .map((v) => versions.get(v))
        .filter((e): e is IndexEntry => e !== undefined),
    );
  }
  return files;
}

function commitMessage(
  previous: Provenance,
  next: Provenance,
  selection: Selection,
  options: MirrorOptions,
): string {
  let added = 0;
  let changed = 0;
  for (const [key, record] of next) {
    const before = previous.get(key);
    if (!before) added++;
    else if (before.checksum !== record.checksum || before.source !== record.source) changed++;
  }
  const removed = [...previous.keys()].filter((key) => !next.has(key)).length;
  const what = options.full ? '--full' : options.patterns.join(' ');
  return `mirror ${what}${options.source ? ` -s ${options.source}` : ''}\n\n${added} versions added, ${changed} changed, ${removed} removed; ${next.size} served (${selection.versions.size} selected this run).\n`;
}
