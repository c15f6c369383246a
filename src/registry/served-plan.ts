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
  /**
   * When the winner's archive is not here yet: the best other enabled source whose archive is
   * (the line served so far). It stays served until the winner's archive arrives, so a failed
   * or pending download never takes away a version clients already use.
   */
  standIn?: SourcedEntry;
}

/** The line to serve for a planned version: the winner's once its archive is here, else its stand-in. */
export function servedLine(p: PlannedVersion): SourcedEntry | undefined {
  return p.present ? p.winner : p.standIn;
}

/**
 * Everything the served index should list: the `wanted` versions, plus every version mirrored
 * before (an archive of it is on disk, from any enabled source). Each gets the winning source's
 * line, and is present when an archive with that line's checksum is on disk. Versions that no
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
          if (present) return { module, version, winner, present };
          for (const other of candidates.slice(1)) {
            if (await registry.store.has(module, version, other.entry.checksum)) {
              return { module, version, winner, present, standIn: other };
            }
          }
          return wanted.has(moduleKey(module, version)) ? { module, version, winner, present } : undefined;
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
  /** What was recorded: module@version -> the source whose line is served. */
  provenance: Provenance;
}

/**
 * Publishes one commit on the served index (none if nothing differs) and records each served
 * version's source. Only lines whose archive is on disk are listed, so a client is never told
 * about an archive it cannot download.
 */
export async function publishServed(
  registry: Registry,
  plan: PlannedVersion[],
  title: string,
): Promise<PublishOutcome> {
  const served = plan.flatMap((p) => {
    const line = servedLine(p);
    return line ? [{ module: p.module, version: p.version, line }] : [];
  });
  const previous = await readProvenance(registry.layout.provenanceFile);
  const provenance: Provenance = new Map(
    served.map((s) => [
      moduleKey(s.module, s.version),
      { source: s.line.source, checksum: s.line.entry.checksum },
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
    provenance,
  };
}

/**
 * module -> served lines in semver order: publish order for a single source (the real index
 * appends versions in ascending order), and one deterministic order when sources are merged.
 */
function servedFiles(served: Array<{ module: string; line: SourcedEntry }>): Map<string, IndexEntry[]> {
  const files = new Map<string, IndexEntry[]>();
  for (const { module, line } of served) {
    const entries = files.get(module);
    if (entries) entries.push(line.entry);
    else files.set(module, [line.entry]);
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
