import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { MergedCatalog } from '../index/merged-catalog.js';
import { ServedIndex } from '../index/served-index.js';
import { acquireRegistryLock, type RegistryLock } from './lock.js';
import { publishProxyIndex } from './proxy-index.js';
import type { Registry } from './registry.js';
import { type PublishOutcome, planServedVersions, publishServed } from './served-plan.js';
import { cachedCatalogs, enabledUpstreams, type IndexLog, mergeWithHosted } from './source-indexes.js';

export interface RebuildOutcome extends PublishOutcome {
  /** Versions that should be served but whose winning archive is not on disk yet. */
  needDownload: number;
}

/**
 * Recomputes the served index from what is already here: the last fetched index of each
 * enabled source, the published modules and the archives on disk. No network, no downloads; a
 * version whose winning archive is missing stays out until the next `mirror` fetches it.
 */
export async function rebuildIndex(registry: Registry, log: IndexLog): Promise<RebuildOutcome> {
  const lock = await acquireRegistryLock(registry.layout.lockTarget, 'index rebuild', {
    waitForBriefMs: 60_000,
  });
  try {
    return await rebuildServed(registry, await mergedHere(registry, log, log), lock, 'index rebuild');
  } finally {
    await lock.release();
  }
}

/**
 * After a publish, yank or deprecate (the caller holds the lock): the served index, and the
 * pull-through index when this registry has one, list the change at once.
 */
export async function republishServedIndexes(
  registry: Registry,
  lock: RegistryLock,
  log: IndexLog,
  title: string,
): Promise<RebuildOutcome> {
  // That a source was never fetched is no news to someone publishing.
  const quiet: IndexLog = { info: () => undefined, warn: () => undefined };
  const merged = await mergedHere(registry, quiet, log);
  const outcome = await rebuildServed(registry, merged, lock, title);
  const proxyDir = registry.layout.proxyIndexDir;
  const hasProxyIndex = await access(join(proxyDir, 'HEAD')).then(
    () => true,
    () => false,
  );
  if (hasProxyIndex) {
    lock.assertHeld();
    await publishProxyIndex(new ServedIndex(proxyDir), merged, title);
  }
  return outcome;
}

/** Every enabled source's last fetched index and the published modules, merged (no network). */
async function mergedHere(registry: Registry, sourceLog: IndexLog, log: IndexLog): Promise<MergedCatalog> {
  const upstreams = enabledUpstreams(registry.config, registry.layout);
  return mergeWithHosted(registry, await cachedCatalogs(upstreams, sourceLog), log);
}

async function rebuildServed(
  registry: Registry,
  merged: MergedCatalog,
  lock: RegistryLock,
  title: string,
): Promise<RebuildOutcome> {
  const plan = await planServedVersions(registry, merged, new Set());
  lock.assertHeld();
  const outcome = await publishServed(registry, plan, title);
  return { ...outcome, needDownload: plan.filter((p) => !p.present).length };
}
