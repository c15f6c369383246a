import { isClustered } from '../coordination/cluster.js';
import { describeError, isRegistryError } from '../core/errors.js';
import type { ServedIndex } from '../index/served-index.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { adoptLegacyArchives } from './legacy-data.js';
import { acquireRegistryLock, type RegistryLock } from './lock.js';
import { type MirrorReporter, remirror } from './mirror.js';
import { publishProxyIndex } from './proxy-index.js';
import type { Registry } from './registry.js';
import { type ShadowAttempt, shadowWarning } from './source-policy.js';

/** proxy: pull-through, the index lists every source's versions; mirror: only stored ones. */
export type ServeMode = 'proxy' | 'mirror';

export interface SyncLog {
  info(message: string): void;
  warn(message: string): void;
  /** An upstream lists a module under `[hosted] exclusive` (also warned about). */
  shadowed?(attempt: ShadowAttempt): void;
}

export interface SourceSyncResult {
  name: string;
  /** fetched: the index was fetched; skipped: its circuit is open; failed: the fetch failed; busy: a mirror holds the registry. */
  result: 'fetched' | 'skipped' | 'failed' | 'busy';
  commit: string | null;
  error?: string;
}

export interface SyncReport {
  trigger: string;
  started: string;
  seconds: number;
  sources: SourceSyncResult[];
  /** The served index after the sync; undefined when publishing had to wait for a running mirror. */
  index?: { commit: string; changed: boolean; modules: number; versions: number };
  /** Mirror mode: archives of the served modules' new versions fetched by this sync. */
  mirrored?: { downloaded: number; failed: number; bytes: number };
}

export interface SyncOptions {
  mode: ServeMode;
  /** The index served in proxy mode (data/proxy-index). */
  proxyIndex: ServedIndex;
  trigger: string;
  /** Fetch sources whose circuit is open too (an operator asked for it). */
  force?: boolean;
}

/**
 * One refresh of every enabled source's index, then of the served index: in proxy mode every
 * source's versions are listed; in mirror mode the served modules' new versions are mirrored
 * first. The registry lock is held meanwhile, so a sync never runs into a `mirror` fetching the
 * same repositories; while a mirror holds it, the indexes that mirror fetched are used. A source
 * that fails keeps its last good index, and the served index moves only when something changed.
 */
export async function syncIndexes(
  registry: Registry,
  pool: UpstreamPool,
  options: SyncOptions,
  log: SyncLog,
): Promise<SyncReport> {
  const startedAt = Date.now();
  // A proxy-mode sync only fetches, so a mirror may wait for it; a mirror-mode one downloads.
  const lock = await tryLock(registry, options.mode === 'proxy');
  try {
    const sources = await Promise.all(
      pool.upstreams.map(async (upstream): Promise<SourceSyncResult> => {
        const health = pool.health(upstream.name);
        if (!lock)
          return { name: upstream.name, result: 'busy', commit: (await upstream.fetchedCommit()) ?? null };
        if (!options.force && health && !health.breaker.allow()) {
          return { name: upstream.name, result: 'skipped', commit: (await upstream.fetchedCommit()) ?? null };
        }
        try {
          const commit = await upstream.fetchIndex((message) => log.warn(`sync: ${message}`));
          health?.synced(commit);
          return { name: upstream.name, result: 'fetched', commit };
        } catch (error) {
          const message = describeError(error);
          const refused = isRegistryError(error) && error.code === 'AUTH';
          health?.failed(
            refused ? 'index fetch: credentials refused' : 'index fetch failed (see the server log)',
          );
          log.warn(`sync: ${message}; keeping the last fetched index`);
          return {
            name: upstream.name,
            result: 'failed',
            commit: (await upstream.fetchedCommit()) ?? null,
            error: message,
          };
        }
      }),
    );
    const merged = await pool.reload(
      (message) => log.warn(message),
      (attempt) => {
        log.warn(`sync: ${shadowWarning(attempt)}`);
        log.shadowed?.(attempt);
      },
    );
    let index: SyncReport['index'];
    let mirrored: SyncReport['mirrored'];
    const title = `sync (${options.trigger})`;
    if (options.mode === 'proxy') {
      if (lock) await adoptLegacyArchives(registry, merged, (message) => log.warn(`sync: ${message}`));
      // Replicas: only the writer commits, and only from indexes it just fetched. A replica with
      // an older copy of some source would take versions back out of the shared history.
      const fresh = sources.every((source) => source.result === 'fetched');
      if (!isClustered(registry.config) || (lock && fresh)) {
        index = await publishProxyIndex(options.proxyIndex, merged, title);
      } else if (lock) {
        log.warn(
          'sync: not every source was fetched; the shared index is left for a replica that fetches them all',
        );
      }
    } else if (lock) {
      // Mirror mode: what `mirror` was asked for is asked again, and new versions are
      // downloaded before they are listed: the index never names an archive not stored here.
      const summary = await remirror(registry, pool.upstreams, merged, lock, syncReporter(log), title);
      mirrored = { downloaded: summary.downloaded, failed: summary.failed, bytes: summary.bytes };
      index = { ...summary.served };
    }
    if (index?.changed)
      log.info(`sync: index now at ${index.commit.slice(0, 12)} (${index.versions} versions)`);
    return {
      trigger: options.trigger,
      started: new Date(startedAt).toISOString(),
      seconds: (Date.now() - startedAt) / 1000,
      sources,
      ...(index ? { index } : {}),
      ...(mirrored ? { mirrored } : {}),
    };
  } finally {
    await lock?.release();
  }
}

/** How long a replica's proxy sync waits for the others' (each holds the lease for seconds). */
const CLUSTER_SYNC_WAIT_MS = 60_000;

/** The registry lock, or undefined while a mirror (or another writer) holds it. */
async function tryLock(registry: Registry, brief: boolean): Promise<RegistryLock | undefined> {
  try {
    // Replicas take turns: a proxy sync that gave up whenever another replica's held the lease
    // would leave this replica without source indexes, unable to fetch a missing archive.
    const wait = brief && isClustered(registry.config) ? { waitForBriefMs: CLUSTER_SYNC_WAIT_MS } : {};
    return await acquireRegistryLock(registry.layout.lockTarget, 'serve index sync', { brief, ...wait });
  } catch (error) {
    if (isRegistryError(error) && error.code === 'LOCKED') return undefined;
    throw error;
  }
}

/** Mirror progress as log lines: failures and retries only, a sync is not watched live. */
function syncReporter(log: SyncLog): MirrorReporter {
  const nothing = () => undefined;
  return {
    info: nothing,
    warn: (message) => log.warn(`sync: ${message}`),
    downloadsStarted: nothing,
    downloadFinished: nothing,
    downloadRetrying: (label, attempt, reason) => log.warn(`sync: retry ${attempt} of ${label}: ${reason}`),
    downloadFailed: (label, reason) => log.warn(`sync: ${label} failed: ${reason}`),
    downloadsFinished: nothing,
  };
}
