import pLimit from 'p-limit';
import { moduleKey } from '../core/module-name.js';
import { compareVersions } from '../core/version.js';
import type { IndexEntry } from '../index/index-file.js';
import type { MergedCatalog, SourcedEntry } from '../index/merged-catalog.js';
import type { PublishResult } from '../index/served-index.js';
import { type Provenance, readProvenance, writeProvenance } from './provenance.js';
import type { Registry } from './registry.js';

/** A version the served index should list, with the line that wins and whether its archive is here. */
export interface PlannedVersion {
  module: string;
  version: string;
  winner: SourcedEntry;
  present: boolean;
}

/**
 * Everything the served index should list: the `wanted` versions, plus every version mirrored
 * before (an archive of it is on disk, from any source). Each gets the winning source's line,
 * and is present when an archive with that line's checksum is on disk. Versions that no
 * enabled source lists any more drop out.
 */
export async function planServedVersions(
  registry: Registry,
  merged: MergedCatalog,
  wanted: ReadonlySet<string>,
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
          if (present || wanted.has(moduleKey(module, version))) return { module, version, winner, present };
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

export interface PublishOutcome extends PublishResult {
  modules: number;
  versions: number;
  /** Versions new to the index, served from another source or with other bytes, gone. */
  added: number;
  updated: number;
  removed: number;
}

/**
 * Publishes the present versions as one commit on the served index (none if nothing differs)
 * and records their sources. Only present versions are listed, so a client is never told
 * about an archive it cannot download.
 */
export async function publishServed(
  registry: Registry,
  plan: PlannedVersion[],
  title: string,
): Promise<PublishOutcome> {
  const served = plan.filter((p) => p.present);
  const previous = await readProvenance(registry.layout.provenanceFile);
  const provenance: Provenance = new Map(
    served.map((p) => [
      moduleKey(p.module, p.version),
      { source: p.winner.source, checksum: p.winner.entry.checksum },
    ]),
  );
  const diff = diffProvenance(previous, provenance);
  const message = `${title}\n\n${diff.added} versions added, ${diff.updated} updated, ${diff.removed} removed; ${provenance.size} served.\n`;
  const result = await registry.servedIndex.publish(servedFiles(served), message);
  await writeProvenance(registry.layout.provenanceFile, provenance);
  return {
    ...result,
    modules: new Set(served.map((p) => p.module)).size,
    versions: served.length,
    ...diff,
  };
}

/**
 * module -> served lines in semver order: publish order for a single source (the real index
 * appends versions in ascending order), and one deterministic order when sources are merged.
 */
function servedFiles(served: PlannedVersion[]): Map<string, IndexEntry[]> {
  const files = new Map<string, IndexEntry[]>();
  for (const p of served) {
    const entries = files.get(p.module);
    if (entries) entries.push(p.winner.entry);
    else files.set(p.module, [p.winner.entry]);
  }
  for (const entries of files.values()) entries.sort((a, b) => compareVersions(a.version, b.version));
  return files;
}

function diffProvenance(previous: Provenance, next: Provenance) {
  let added = 0;
  let updated = 0;
  for (const [key, record] of next) {
    const before = previous.get(key);
    if (!before) added++;
    else if (before.checksum !== record.checksum || before.source !== record.source) updated++;
  }
  const removed = [...previous.keys()].filter((key) => !next.has(key)).length;
  return { added, updated, removed };
}
