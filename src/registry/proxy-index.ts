import { compareVersions } from '../core/version.js';
import type { IndexEntry } from '../index/index-file.js';
import type { MergedCatalog } from '../index/merged-catalog.js';
import type { PublishResult, ServedIndex } from '../index/served-index.js';

export interface ProxyPublishResult extends PublishResult {
  modules: number;
  versions: number;
}

/**
 * Pull-through mode's index: every version any enabled source lists, each with the winning
 * source's line (priority order, as in the mirror), whether or not its archive is stored yet.
 * One commit on top of the last, none when nothing changed.
 */
export async function publishProxyIndex(
  index: ServedIndex,
  merged: MergedCatalog,
  title: string,
): Promise<ProxyPublishResult> {
  const files = new Map<string, IndexEntry[]>();
  let versions = 0;
  for (const module of merged.modules()) {
    const entries = merged
      .versions(module)
      .flatMap((version) => merged.winner(module, version)?.entry ?? [])
      .sort((a, b) => compareVersions(a.version, b.version));
    versions += entries.length;
    files.set(module, entries);
  }
  const message = `${title}\n\n${files.size} modules, ${versions} versions.\n`;
  // Two servers on one registry may publish at once; fast-import then refuses the one whose
  // parent is no longer the tip. Publishing again on top of the new tip settles it.
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await index.publish(files, message);
      return { ...result, modules: files.size, versions };
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
}
