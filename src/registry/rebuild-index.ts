import { adoptLegacyArchives } from './legacy-data.js';
import { acquireRegistryLock } from './lock.js';
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
    const upstreams = enabledUpstreams(registry.config, registry.layout);
    const merged = await mergeWithHosted(registry, await cachedCatalogs(upstreams, log), log);
    await adoptLegacyArchives(registry, merged, (message) => log.warn(message));
    const plan = await planServedVersions(registry, merged, new Set());
    lock.assertHeld();
    const outcome = await publishServed(registry, plan, 'index rebuild');
    return { ...outcome, needDownload: plan.filter((p) => !p.present).length };
  } finally {
    await lock.release();
  }
}
