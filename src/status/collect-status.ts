import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sourceLocation } from '../config/source-location.js';
import { resolveCommit } from '../git/objects.js';
import { ServedIndex } from '../index/served-index.js';
import type { RegistryLayout } from '../registry/layout.js';
import { sourceIndexDir } from '../registry/layout.js';
import type { Registry } from '../registry/registry.js';
import { ARCHIVE_FOLDER, type ArchiveStore } from '../store/archive-store.js';
import { FsBlobStore } from '../store/blob/fs-blob-store.js';
import { FETCHED_REF, fetchStampPath } from '../upstream/upstream-source.js';
import { DownloadStats } from './download-stats.js';
import { readMirrorRuns } from './mirror-runs.js';
import { isServerRunning, type LiveSource, readServerState } from './server-state.js';
import type { HourlyCount, SourceStatus, StatusReport } from './status-report.js';

/** The served index as the status needs it: module -> version -> checksum. */
export interface IndexView {
  commit: string | undefined;
  modules: Map<string, Map<string, { checksum: string }>>;
}

/** Facts only a running server has; the CLI reads the last ones it wrote (server-state.ts). */
export interface LiveFacts {
  server: StatusReport['server'];
  mode: StatusReport['registry']['mode'];
  sync: StatusReport['sync'];
  sources: LiveSource[];
  downloads: HourlyCount[];
}

export interface StatusInputs {
  /** The index being served; default: read from disk for the mode. */
  index?: IndexView;
  /** Served versions per source (see countBySource); callers cache it per index commit. */
  servedBySource(index: IndexView): Promise<Map<string, number>>;
  /** Count and bytes of stored archives; default: walk data/packages. */
  archives?: () => Promise<{ count: number; bytes: number }>;
  publicUrl: string;
}

const SHOWN_RUNS = 20;

/** One report for `status`, `GET /status` and the status page. */
export async function collectStatus(
  registry: Registry,
  live: LiveFacts | undefined,
  inputs: StatusInputs,
): Promise<StatusReport> {
  const { config, layout } = registry;
  const mode = live?.mode ?? (config.server.upstream_fallback ? 'proxy' : 'mirror');
  const index =
    inputs.index ?? (await readIndexView(mode === 'proxy' ? layout.proxyIndexDir : layout.indexDir));
  const [archives, runs, servedBySource] = await Promise.all([
    (inputs.archives ?? (() => storeUsage(registry.store)))(),
    readMirrorRuns(layout),
    inputs.servedBySource(index),
  ]);
  let versions = 0;
  for (const entries of index.modules.values()) versions += entries.size;
  const liveSources = new Map((live?.sources ?? []).map((s) => [s.name, s]));
  const sources = await Promise.all(
    config.sources.map(async (source): Promise<SourceStatus> => {
      const seen = liveSources.get(source.name);
      // A running server knows both; without one, ask the fetched repository (a git process).
      const fetched =
        seen?.index_commit && seen.last_sync
          ? { commit: seen.index_commit, at: seen.last_sync }
          : await fetchedIndex(layout, source.name);
      return {
        name: source.name,
        type: source.type,
        url: sourceLocation(source),
        priority: source.priority,
        enabled: source.enabled,
        default: source.name === config.default_source,
        state: source.enabled ? (seen?.state ?? 'unknown') : 'disabled',
        last_sync: seen?.last_sync ?? fetched.at,
        last_error: seen?.last_error ?? null,
        index_commit: seen?.index_commit ?? fetched.commit,
        versions_served: servedBySource.get(source.name) ?? 0,
      };
    }),
  );
  // Published modules: a source with no upstream, always up, listed by its priority.
  const hostedCommit = (await registry.hosted.head()) ?? null;
  if (hostedCommit) {
    sources.push({
      name: config.hosted.name,
      type: 'hosted',
      url: inputs.publicUrl,
      priority: config.hosted.priority,
      enabled: true,
      default: false,
      state: 'ok',
      last_sync: null,
      last_error: null,
      index_commit: hostedCommit,
      versions_served: servedBySource.get(config.hosted.name) ?? 0,
    });
    sources.sort((a, b) => a.priority - b.priority);
  }
  return {
    registry: { name: config.registry.name, url: inputs.publicUrl, mode },
    server: live?.server ?? { running: false, pid: null, started_at: null, url: null, git_cache: null },
    index: { commit: index.commit ?? null, modules: index.modules.size, versions },
    archives: {
      ...archives,
      store: registry.blobs instanceof FsBlobStore ? 'disk' : registry.blobs.description,
    },
    sync: live?.sync ?? {
      auto: config.mirror.auto_sync,
      interval: config.mirror.auto_sync ? config.mirror.sync_interval : null,
      last_run: null,
      next_run: null,
    },
    sources,
    mirror_runs: runs.slice(0, SHOWN_RUNS),
    downloads: live?.downloads ?? (await savedDownloads(layout)),
  };
}

/** For `status` on the command line: the last facts a still-running server wrote, if any. */
export async function savedLiveFacts(layout: RegistryLayout): Promise<LiveFacts | undefined> {
  const state = await readServerState(layout);
  if (!state || !isServerRunning(state)) return undefined;
  return {
    server: {
      running: true,
      pid: state.pid,
      started_at: state.started_at,
      url: state.url,
      git_cache: state.git_cache ?? null,
    },
    mode: state.mode,
    sync: state.sync,
    sources: state.sources,
    downloads: await savedDownloads(layout),
  };
}

async function savedDownloads(layout: RegistryLayout): Promise<HourlyCount[]> {
  const stats = new DownloadStats(layout.downloadsFile);
  await stats.load();
  return stats.hourly();
}

async function readIndexView(gitDir: string): Promise<IndexView> {
  const snapshot = await new ServedIndex(gitDir).snapshot().catch(() => undefined);
  return snapshot
    ? { commit: snapshot.commit, modules: snapshot.modules }
    : { commit: undefined, modules: new Map() };
}

/** How many served versions each source provided, given a lookup that is already in memory. */
export function countBySource(
  index: IndexView,
  sourceOf: (module: string, version: string, checksum: string) => string | undefined,
): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [module, entries] of index.modules) {
    for (const [version, entry] of entries) {
      const source = sourceOf(module, version, entry.checksum);
      if (source) counts.set(source, (counts.get(source) ?? 0) + 1);
    }
  }
  return counts;
}

/** A source's fetched index: its commit, and when it was last fetched. */
async function fetchedIndex(
  layout: RegistryLayout,
  source: string,
): Promise<{ commit: string | null; at: string | null }> {
  const gitDir = sourceIndexDir(layout, source);
  const commit = (await resolveCommit(gitDir, FETCHED_REF).catch(() => undefined)) ?? null;
  const at = await readFile(fetchStampPath(gitDir), 'utf8').then(
    (text) => (Number.isNaN(Date.parse(text.trim())) ? null : text.trim()),
    () => null,
  );
  return { commit, at };
}

/** Stored archives: every `.zip` under packages/ (temp files live in data/tmp). */
export async function storeUsage(store: ArchiveStore): Promise<{ count: number; bytes: number }> {
  const { blobs } = store;
  if (!(blobs instanceof FsBlobStore)) {
    let count = 0;
    let bytes = 0;
    for await (const blob of blobs.list(ARCHIVE_FOLDER)) {
      if (!blob.key.endsWith('.zip')) continue;
      count++;
      bytes += blob.size;
    }
    return { count, bytes };
  }
  const packagesDir = join(blobs.root, ARCHIVE_FOLDER);
  let count = 0;
  let bytes = 0;
  const entries = await readdir(packagesDir, { recursive: true, withFileTypes: true }).catch(() => []);
  const sizes = await Promise.all(
    entries
      .filter((entry) => entry.isFile() && entry.name.endsWith('.zip'))
      .map((entry) =>
        stat(join(entryDir(entry), entry.name)).then(
          (s) => s.size,
          () => 0,
        ),
      ),
  );
  for (const size of sizes) {
    count++;
    bytes += size;
  }
  return { count, bytes };
}

/** Node 20.12 renamed Dirent.path to parentPath; accept either. */
function entryDir(entry: { parentPath?: string; path?: string }): string {
  return entry.parentPath ?? entry.path ?? '';
}
