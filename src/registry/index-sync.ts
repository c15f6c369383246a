import { describeError, isRegistryError } from '../core/errors.js';
import type { ServedIndex } from '../index/served-index.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { acquireRegistryLock, type RegistryLock } from './lock.js';
import { publishProxyIndex } from './proxy-index.js';
import type { Registry } from './registry.js';
import { planServedVersions, publishServed } from './served-plan.js';

/** proxy: pull-through, the index lists every source's versions; mirror: only stored ones. */
export type ServeMode = 'proxy' | 'mirror';

export interface SyncLog {
  info(message: string): void;
  warn(message: string): void;
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
 * One refresh of every enabled source's index, then of the served index. Fetching takes the
 * registry lock briefly, so it never runs into a `mirror` fetching the same repositories; when a
 * mirror holds the lock, its fetches serve instead. A source that fails keeps its last good
 * index, and the served index moves only when something changed.
 */
export async function syncIndexes(
  registry: Registry,
  pool: UpstreamPool,
  options: SyncOptions,
  log: SyncLog,
): Promise<SyncReport> {
  const startedAt = Date.now();
  const lock = await tryLock(registry);
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
          const commit = await upstream.fetchIndex();
          health?.synced(commit);
          return { name: upstream.name, result: 'fetched', commit };
        } catch (error) {
          const message = describeError(error);
          health?.failed(message);
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
    const merged = await pool.reload((message) => log.warn(message));
    let index: SyncReport['index'];
    const title = `sync (${options.trigger})`;
    if (options.mode === 'proxy') {
      index = await publishProxyIndex(options.proxyIndex, merged, title);
    } else if (lock) {
      // Mirror mode: stored versions only, with the fresh lines (a source's new checksum, a
      // version withdrawn); new versions arrive with the next `mirror`.
      const plan = await planServedVersions(registry, merged, new Set());
      lock.assertHeld();
      const outcome = await publishServed(registry, plan, title);
      index = {
        commit: outcome.commit,
        changed: outcome.changed,
        modules: outcome.modules,
        versions: outcome.versions,
      };
    }
    if (index?.changed)
      log.info(`sync: index now at ${index.commit.slice(0, 12)} (${index.versions} versions)`);
    return {
      trigger: options.trigger,
      started: new Date(startedAt).toISOString(),
      seconds: (Date.now() - startedAt) / 1000,
      sources,
      ...(index ? { index } : {}),
    };
  } finally {
    await lock?.release();
  }
}

/** The registry lock, or undefined while a mirror (or another writer) holds it. */
async function tryLock(registry: Registry): Promise<RegistryLock | undefined> {
  try {
    return await acquireRegistryLock(registry.layout.lockTarget, 'serve index sync', { brief: true });
  } catch (error) {
    if (isRegistryError(error) && error.code === 'LOCKED') return undefined;
    throw error;
  }
}
