import { dirname } from 'node:path';
import pLimit from 'p-limit';
import type { RegistryConfig, SourceConfig } from '../config/schema.js';
import { describeError, RegistryError } from '../core/errors.js';
import { moduleKey } from '../core/module-name.js';
import { removeStaleTemps } from '../fs/atomic-write.js';
import { clearDeadTemps, processTempDir } from '../fs/temp-dirs.js';
import type { MergedCatalog } from '../index/merged-catalog.js';
import { fetchArchive } from '../upstream/archive-fetch.js';
import { createSourceAgents } from '../upstream/http-agent.js';
import type { UpstreamSource } from '../upstream/upstream-source.js';
import { adoptLegacyArchives } from './legacy-data.js';
import { acquireRegistryLock, type RegistryLock } from './lock.js';
import { type AssetSummary, mirrorAssets } from './mirror-assets.js';
import {
  describeRequest,
  type MirrorRequest,
  readMirrorRequests,
  recordMirrorRequest,
} from './mirror-requests.js';
import { findSource, type Registry } from './registry.js';
import { mergeSelections, type Selection, selectVersions } from './select-versions.js';
import { type PlannedVersion, planServedVersions, publishServed } from './served-plan.js';
import { downloadLimits, enabledUpstreams, mergeWithHosted, refreshIndexes } from './source-indexes.js';
import { describeSymbolsRefresh, refreshSymbols, type SymbolsRefresh } from './symbols-store.js';

export interface MirrorOptions {
  patterns: string[];
  full: boolean;
  strict: boolean;
  /** Source whose index the patterns match; the default source when absent. */
  source?: string;
  reporter: MirrorReporter;
  /**
   * Once aborted (SIGINT/SIGTERM), no further download is launched and no failed attempt is
   * retried; downloads in flight finish, and whatever completed is published as usual.
   */
  signal?: AbortSignal;
  /** Fetch the prebuilt wasm of the mirrored versions' executable packages (default true). */
  assets?: boolean;
}

/** How the CLI shows progress: a bar, log lines, or nothing. */
export interface MirrorReporter {
  info(message: string): void;
  warn(message: string): void;
  downloadsStarted(total: number): void;
  /** A download is launched (it is in flight until finished, failed or stopped). */
  downloadStarted?(label: string): void;
  downloadFinished(label: string, bytes: number): void;
  downloadRetrying(label: string, attempt: number, reason: string): void;
  downloadFailed(label: string, reason: string): void;
  /** An attempt failed after the run was interrupted: not retried, and not counted as failed. */
  downloadStopped?(label: string, reason: string): void;
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
  /** Selected versions already present and verified: not downloaded again. */
  skipped: number;
  failed: number;
  /** Selected versions neither downloaded nor failed because the run was interrupted. */
  remaining: number;
  /** The run was asked to stop (SIGINT/SIGTERM) before it was done. */
  interrupted: boolean;
  bytes: number;
  seconds: number;
  failures: MirrorFailure[];
  warnings: string[];
  /** What the served index lists after this run. */
  served: { modules: number; versions: number; commit: string; changed: boolean };
  /** Per source: versions served from it, and archives downloaded from it this run. */
  sources: Record<string, { served: number; downloaded: number }>;
  /** Prebuilt wasm tools; absent with --no-assets. */
  assets?: AssetSummary;
  /** Each enabled source's symbols.zip, asked again with If-None-Match. */
  symbols: SymbolsRefresh[];
}

/**
 * One mirror run: refresh the sources' indexes, pick versions, download what is missing,
 * then publish the served index in one commit.
 */
export async function mirror(registry: Registry, options: MirrorOptions): Promise<MirrorSummary> {
  const started = performance.now();
  const { config, layout } = registry;
  const { reporter } = options;
  const selected = selectedSource(registry, options.source);
  const upstreams = enabledUpstreams(config, layout);
  // Missing credentials are a configuration error: say so before anything is fetched or written.
  for (const upstream of upstreams) upstream.headers();

  const lock = await acquireRegistryLock(layout.lockTarget, 'mirror', { waitForBriefMs: 60_000 });
  try {
    // Index warnings (a source down, entries skipped) also go into the summary, for --json.
    const indexWarnings: string[] = [];
    const log = {
      info: (message: string) => reporter.info(message),
      warn: (message: string) => {
        indexWarnings.push(message);
        reporter.warn(message);
      },
    };
    const merged = await mergeWithHosted(registry, await refreshIndexes(upstreams, selected, log), log);
    // The catalogs as the policy cut them down; published modules are roots of --full too.
    const catalogs = merged.catalogs;
    const roots =
      options.full && !options.source ? catalogs : catalogs.filter((c) => c.source === selected.name);
    const request: MirrorRequest = {
      patterns: options.patterns,
      full: options.full,
      strict: options.strict,
      ...(options.full && !options.source ? {} : { source: selected.name }),
    };
    const summary = await mirrorSelection(registry, {
      upstreams,
      merged,
      selection: selectVersions(roots, merged, options),
      lock,
      reporter,
      title: describeRequest(request),
      started,
      assets: options.assets ?? true,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    // An interrupted run may have been a mistake (a pattern too wide): serve's sync must not
    // carry it on. Running the same mirror again records it.
    if (!summary.interrupted) await recordMirrorRequest(layout.mirrorRequestsFile, request);
    return { ...summary, warnings: [...indexWarnings, ...summary.warnings] };
  } finally {
    await lock.release();
  }
}

/**
 * Asks again what `mirror` was asked before (data/state/mirror-requests.json), against catalogs
 * fetched by the caller, who holds the lock: new versions of the modules matched then, and the
 * dependencies those need. `serve`'s index sync in mirror mode.
 */
export async function remirror(
  registry: Registry,
  upstreams: UpstreamSource[],
  merged: MergedCatalog,
  lock: RegistryLock,
  reporter: MirrorReporter,
  title: string,
): Promise<MirrorSummary> {
  const started = performance.now();
  const selections: Selection[] = [];
  const requests = withConfiguredPackages(
    await readMirrorRequests(registry.layout.mirrorRequestsFile),
    registry.config,
  );
  if (requests.length === 0) {
    reporter.warn('no mirror run is recorded yet, so there is nothing to keep current: run `mirror` once');
  }
  for (const request of requests) {
    const roots = merged.catalogs.filter((c) => request.source === undefined || c.source === request.source);
    if (roots.length === 0) {
      reporter.warn(`${describeRequest(request)}: source "${request.source}" is not enabled; skipped`);
      continue;
    }
    try {
      selections.push(selectVersions(roots, merged, request));
    } catch (error) {
      reporter.warn(`${describeRequest(request)}: ${describeError(error)}`);
    }
  }
  const selection = mergeSelections(selections);
  return mirrorSelection(registry, {
    upstreams,
    merged,
    selection,
    lock,
    reporter,
    title,
    started,
    assets: true,
  });
}

/**
 * `[mirror] packages` (moonbit-registry-tools' list) is kept current like a recorded `mirror`
 * of those patterns from the default source, even before `mirror` ever ran.
 */
function withConfiguredPackages(requests: MirrorRequest[], config: RegistryConfig): MirrorRequest[] {
  const { packages } = config.mirror;
  if (packages.length === 0 || config.default_source === undefined) return requests;
  const configured: MirrorRequest = {
    patterns: packages,
    full: false,
    strict: false,
    source: config.default_source,
  };
  const key = (r: MirrorRequest) => describeRequest(r);
  return requests.some((r) => key(r) === key(configured)) ? requests : [...requests, configured];
}

interface MirrorJob {
  upstreams: UpstreamSource[];
  merged: MergedCatalog;
  selection: Selection;
  /** Held by the caller for the whole job. */
  lock: RegistryLock;
  reporter: MirrorReporter;
  /** First line of the index commit. */
  title: string;
  started: number;
  signal?: AbortSignal;
  assets: boolean;
}

/** Downloads what the selection lacks, then publishes the served index in one commit. */
async function mirrorSelection(registry: Registry, job: MirrorJob): Promise<MirrorSummary> {
  const { layout } = registry;
  const { selection, merged, reporter, upstreams } = job;
  await clearDeadTemps(layout.tmpDir); // leftovers of killed runs
  await removeStaleTemps(dirname(layout.provenanceFile));
  const tmp = await processTempDir(layout.tmpDir);
  try {
    for (const warning of selection.warnings) reporter.warn(warning);
    const dependencies = selection.versions.size - selection.matched;
    reporter.info(
      `${selection.versions.size} versions selected (${selection.matched} matched, ${dependencies} dependencies)`,
    );

    // moonbit-registry-tools' archives whose checksum a source lists need no download.
    const legacy = await adoptLegacyArchives(registry, merged, (message) => reporter.warn(message));
    if (legacy.adopted > 0)
      reporter.info(`${legacy.adopted} archive(s) of moonbit-registry-tools joined the store`);
    const wanted = new Set(selection.versions.keys());
    const plan = await planServedVersions(registry, merged, wanted);
    const skipped = plan.filter((p) => p.present && wanted.has(moduleKey(p.module, p.version))).length;
    // Symbols come beside the archives: one more download, no reason to wait for the others.
    const [downloads, symbols] = await Promise.all([
      downloadMissing(
        registry,
        tmp.path,
        merged,
        new Map(upstreams.map((u) => [u.name, u])),
        plan.filter((p) => !p.present),
        reporter,
        job.signal,
      ),
      mirrorSymbols(registry, upstreams, tmp.path, reporter),
    ]);
    // Before the index names the new versions, so their tools run as soon as clients see them.
    const assets = job.assets
      ? await mirrorAssets(registry, {
          versions: plan.filter((p) => p.present && wanted.has(moduleKey(p.module, p.version))),
          upstreams: new Map(upstreams.map((u) => [u.name, u])),
          tmpDir: tmp.path,
          warn: (message) => reporter.warn(message),
          ...(job.signal ? { signal: job.signal } : {}),
        })
      : undefined;
    job.lock.assertHeld();
    const outcome = await publishServed(registry, plan, job.title);

    const sources: MirrorSummary['sources'] = {};
    for (const upstream of upstreams) {
      sources[upstream.name] = { served: 0, downloaded: downloads.bySource.get(upstream.name) ?? 0 };
    }
    for (const { source } of outcome.provenance.values()) {
      const stats = sources[source];
      if (stats) stats.served++;
    }
    return {
      modules: new Set([...selection.versions.values()].map((v) => v.module)).size,
      versions: selection.versions.size,
      downloaded: downloads.count,
      skipped,
      failed: downloads.failures.length,
      remaining: downloads.remaining,
      interrupted: job.signal?.aborted ?? false,
      bytes: downloads.bytes,
      seconds: (performance.now() - job.started) / 1000,
      failures: downloads.failures,
      warnings: selection.warnings,
      served: {
        modules: outcome.modules,
        versions: outcome.versions,
        commit: outcome.commit,
        changed: outcome.changed,
      },
      sources,
      ...(assets ? { assets } : {}),
      symbols,
    };
  } finally {
    await tmp.remove();
  }
}

/** Refreshes every enabled source's symbols.zip; a failure is a warning, the old copy stays. */
async function mirrorSymbols(
  registry: Registry,
  upstreams: UpstreamSource[],
  tmpDir: string,
  reporter: MirrorReporter,
): Promise<SymbolsRefresh[]> {
  const agents = createSourceAgents(1);
  try {
    const refreshed = await refreshSymbols(registry.blobs, upstreams, {
      tmpDir,
      dispatcherFor: agents.dispatcherFor,
      limits: downloadLimits(registry.config),
    });
    for (const refresh of refreshed) {
      if (refresh.status === 'failed') reporter.warn(describeSymbolsRefresh(refresh));
      else reporter.info(describeSymbolsRefresh(refresh));
    }
    return refreshed;
  } finally {
    await agents.close();
  }
}

function selectedSource(registry: Registry, name: string | undefined): SourceConfig {
  const chosen = name ?? registry.config.default_source;
  if (!chosen) {
    throw new RegistryError('CONFIG', 'no source given and no default_source configured', {
      hint: 'pass -s SOURCE or run `moonbit-registry source default NAME`',
    });
  }
  const source = findSource(registry.config, chosen);
  if (!source.enabled) {
    throw new RegistryError('CONFIG', `source "${source.name}" is disabled`, {
      hint: `run \`moonbit-registry source enable ${source.name}\` first`,
    });
  }
  return source;
}

interface DownloadTotals {
  count: number;
  /** Not launched, or stopped after a failed attempt, because the run was interrupted. */
  remaining: number;
  bytes: number;
  bySource: Map<string, number>;
  failures: MirrorFailure[];
}

/** Thrown into fetchArchive to keep it from trying again once the run is interrupted. */
class Interrupted extends Error {}

/**
 * Downloads every missing archive with bounded concurrency; marks each success present. Once
 * `signal` is aborted, nothing new starts: queued downloads are skipped, a failed attempt is
 * neither retried nor tried at another source, and downloads in flight run to their end (each
 * bounded by the source's timeouts) so that their bytes are kept.
 */
async function downloadMissing(
  registry: Registry,
  tmpDir: string,
  merged: MergedCatalog,
  upstreams: Map<string, UpstreamSource>,
  missing: PlannedVersion[],
  reporter: MirrorReporter,
  signal: AbortSignal | undefined,
): Promise<DownloadTotals> {
  const { concurrency } = registry.config.mirror;
  const agents = createSourceAgents(concurrency);
  const totals: DownloadTotals = { count: 0, remaining: 0, bytes: 0, bySource: new Map(), failures: [] };
  // The agent allows `concurrency` connections; twice as many jobs keep every connection busy
  // while finished downloads are fsynced and renamed (extra requests wait in undici's queue).
  const limit = pLimit(concurrency * 2);
  const stopIfInterrupted = () => {
    if (signal?.aborted) throw new Interrupted();
  };
  reporter.downloadsStarted(missing.length);
  try {
    await Promise.all(
      missing.map((item) =>
        limit(async () => {
          if (signal?.aborted) {
            totals.remaining++;
            return;
          }
          const label = moduleKey(item.module, item.version);
          reporter.downloadStarted?.(label);
          let lastReason = 'interrupted';
          try {
            const { module, version } = item;
            const checksum = item.winner.entry.checksum;
            const sources = merged
              .sourcesWithChecksum(module, version, checksum)
              .flatMap((c) => upstreams.get(c.source) ?? []);
            const { bytes, source } = await fetchArchive(
              {
                module,
                version,
                checksum,
                keep: (file) => registry.store.put(module, version, checksum, file),
              },
              {
                sources,
                tmpDir,
                // Asked for each attempt (a retry, the next source): none once interrupted.
                dispatcherFor: (upstream) => {
                  stopIfInterrupted();
                  return agents.dispatcherFor(upstream);
                },
                retries: registry.config.mirror.retries,
                limits: downloadLimits(registry.config),
                onRetry: (what, attempt, reason) => {
                  lastReason = reason;
                  stopIfInterrupted(); // no backoff wait either
                  reporter.downloadRetrying(what, attempt, reason);
                },
              },
            );
            item.present = true;
            totals.count++;
            totals.bytes += bytes;
            totals.bySource.set(source, (totals.bySource.get(source) ?? 0) + 1);
            reporter.downloadFinished(label, bytes);
          } catch (error) {
            if (error instanceof Interrupted) {
              totals.remaining++;
              reporter.downloadStopped?.(label, lastReason);
              return;
            }
            const message = describeError(error);
            totals.failures.push({ module: item.module, version: item.version, error: message });
            reporter.downloadFailed(label, message);
          }
        }),
      ),
    );
  } finally {
    reporter.downloadsFinished();
    await agents.close();
  }
  totals.failures.sort((a, b) =>
    moduleKey(a.module, a.version).localeCompare(moduleKey(b.module, b.version)),
  );
  return totals;
}
