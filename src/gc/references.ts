import { join } from 'node:path';
import { isClustered } from '../coordination/cluster.js';
import { pathExists } from '../fs/path-exists.js';
import type { IndexEntry } from '../index/index-file.js';
import { ServedIndex } from '../index/served-index.js';
import type { Registry } from '../registry/registry.js';
import {
  cachedCatalogs,
  enabledUpstreams,
  type IndexLog,
  mergeWithHosted,
} from '../registry/source-indexes.js';
import { type References, referencesOf } from './garbage-selection.js';

export interface GatheredReferences {
  references: References;
  /** Referencing lines by where they are: the served index, the pull-through index, published versions. */
  counts: { served: number; proxy: number; hosted: number };
  /**
   * Served lines no enabled source (nor a publish) offers any more: a removed or disabled
   * source's, kept until the next mirror or `index rebuild` takes them out of the served index.
   */
  staleServed: number;
}

/**
 * Everything a client may be sent, read now (call it holding the registry lock, so no writer
 * that takes it moves these meanwhile):
 *
 * - every line of the served index (data/index): what mirror mode serves, whichever source it
 *   came from; a removed source's lines go at the next mirror or `index rebuild`, not here,
 *   so the served index never names an archive that is gone;
 * - the lines of the pull-through index (data/proxy-index) that an enabled source or a publish
 *   still offers with the same checksum: one left by a source removed since is not kept for ever
 *   by an index no server may serve again (a proxy still serving it fetches it again on a miss);
 * - every published version (`[hosted]`), served or not.
 */
export async function gatherReferences(registry: Registry, log: IndexLog): Promise<GatheredReferences> {
  const upstreams = enabledUpstreams(registry.config, registry.layout);
  const merged = await mergeWithHosted(registry, await cachedCatalogs(upstreams, log), log);
  const offered = (entry: IndexEntry) =>
    merged.sourcesWithChecksum(entry.module, entry.version, entry.checksum).length > 0;

  const served = await indexLines(registry.servedIndex);
  // Replicas: this host's source indexes may be older than the shared pull-through index (the
  // lock brought it to the shared head), so every line of it counts.
  const proxyOffered = isClustered(registry.config) ? () => true : offered;
  const proxy = (await pathExists(join(registry.layout.proxyIndexDir, 'HEAD')))
    ? (await indexLines(new ServedIndex(registry.layout.proxyIndexDir))).filter(proxyOffered)
    : [];
  const hosted = await registry.hosted.catalog((message) => log.warn(`published modules: ${message}`));
  const published = hosted ? [...hosted.modules.values()].flatMap((versions) => [...versions.values()]) : [];

  return {
    references: referencesOf([...served, ...proxy, ...published]),
    counts: { served: served.length, proxy: proxy.length, hosted: published.length },
    staleServed: served.filter((entry) => !offered(entry)).length,
  };
}

/** Every line of an index's `main`, as `moon` reads it (the last line of a version wins). */
async function indexLines(index: ServedIndex): Promise<IndexEntry[]> {
  const snapshot = await index.snapshot();
  if (!snapshot) return [];
  return [...snapshot.modules.values()].flatMap((versions) => [...versions.values()]);
}
