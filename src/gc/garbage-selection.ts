import { moduleKey } from '../core/module-name.js';

/**
 * What `gc` may remove, decided without touching the disk: given what is stored, what is
 * referenced, what is pinned and when each file was last downloaded, which files are garbage.
 * The caller gathers the facts (under the registry lock) and deletes what this returns.
 */

/** A stored archive: `data/packages/<module>/<version>/<sha256>.zip`. */
export interface StoredArchiveFact {
  kind: 'archive';
  path: string;
  /** Its blob key in the archive store. */
  key: string;
  module: string;
  version: string;
  checksum: string;
  bytes: number;
  mtimeMs: number;
}

/** One version's prebuilt wasm folder: `data/assets/<module>/<version>/` and all below it. */
export interface AssetFolderFact {
  kind: 'assets';
  path: string;
  module: string;
  version: string;
  bytes: number;
  files: number;
  /** The newest modification time in the folder. */
  mtimeMs: number;
  /** In a bucket, where a folder is only a key prefix: every blob in it. */
  keys?: string[];
}

/**
 * A temp entry: a process's folder in data/tmp (`<host>-<pid>`), anything else there, or a
 * temp file a writer left beside its target (`.name.tmp-<pid>-<hex>`, `<sha>.<pid>.<hex>.part`).
 */
export interface TempFact {
  kind: 'temp';
  path: string;
  /** The process that owns it, when its name says (data/tmp folders only). */
  owner?: { host: string; pid: number };
  bytes: number;
  files: number;
  /** The newest modification time in it (itself included). */
  mtimeMs: number;
}

export type StoredFact = StoredArchiveFact | AssetFolderFact | TempFact;

/** Reference = module + version + checksum: archives with other bytes are not referenced. */
export interface References {
  /** `referenceKey(module, version, checksum)` of every referencing line. */
  readonly lines: ReadonlySet<string>;
}

/** When each module@version's archive and assets were last downloaded from `serve` (ms). */
export interface DownloadRecords {
  readonly archives: ReadonlyMap<string, number>;
  readonly assets: ReadonlyMap<string, number>;
}

export interface SelectionRules {
  references: References;
  /** `[gc] keep`: modules never collected. */
  pinned: (module: string) => boolean;
  /** `--older-than`: only files not downloaded (else not written) within this long go. */
  olderThanMs: number | undefined;
  downloads: DownloadRecords;
  now: number;
  /** This machine's name and this process's id, as data/tmp folders are named. */
  host: string;
  pid: number;
  isAlive: (pid: number) => boolean;
  /**
   * A temp entry whose owner cannot be asked (another machine, no owner in its name) goes once
   * nothing in it changed for this long: longer than any download may take.
   */
  staleTempMs: number;
}

/** Why something unreferenced stays. */
export type KeepReason = 'pinned' | 'recent' | 'live';

export interface Selection {
  remove: StoredFact[];
  /** Unreferenced files kept, with the reason (referenced ones are not listed). */
  kept: Array<{ fact: StoredFact; reason: KeepReason }>;
}

export function referenceKey(module: string, version: string, checksum: string): string {
  return `${moduleKey(module, version)}#${checksum}`;
}

/** The references as a set built from (module, version, checksum) triples. */
export function referencesOf(
  lines: Iterable<{ module: string; version: string; checksum: string }>,
): References {
  const keys = new Set<string>();
  for (const { module, version, checksum } of lines) keys.add(referenceKey(module, version, checksum));
  return { lines: keys };
}

export function selectGarbage(facts: readonly StoredFact[], rules: SelectionRules): Selection {
  // Assets belong to a version, whichever bytes of it are served: any referenced line keeps them.
  const referencedVersions = new Set<string>();
  for (const key of rules.references.lines) referencedVersions.add(key.slice(0, key.lastIndexOf('#')));
  const selection: Selection = { remove: [], kept: [] };
  for (const fact of facts) {
    const reason = keepReason(fact, rules, referencedVersions);
    if (reason === 'referenced') continue;
    if (reason) selection.kept.push({ fact, reason });
    else selection.remove.push(fact);
  }
  return selection;
}

function keepReason(
  fact: StoredFact,
  rules: SelectionRules,
  referencedVersions: ReadonlySet<string>,
): KeepReason | 'referenced' | undefined {
  if (fact.kind === 'temp') return tempIsLive(fact, rules) ? 'live' : undefined;
  const key = moduleKey(fact.module, fact.version);
  const referenced =
    fact.kind === 'archive'
      ? rules.references.lines.has(referenceKey(fact.module, fact.version, fact.checksum))
      : referencedVersions.has(key);
  if (referenced) return 'referenced';
  if (rules.pinned(fact.module)) return 'pinned';
  if (rules.olderThanMs !== undefined) {
    const records = fact.kind === 'archive' ? rules.downloads.archives : rules.downloads.assets;
    // A file never downloaded counts from when it was written.
    const lastUse = Math.max(records.get(key) ?? 0, fact.mtimeMs);
    if (rules.now - lastUse < rules.olderThanMs) return 'recent';
  }
  return undefined;
}

/**
 * A process folder of this machine goes exactly when its process is gone; one of another machine,
 * or any other temp entry, only once it has been still for staleTempMs (a download in progress
 * writes all the time, and none lasts that long).
 */
function tempIsLive(fact: TempFact, rules: SelectionRules): boolean {
  const { owner } = fact;
  if (owner && owner.host === rules.host) return owner.pid === rules.pid || rules.isAlive(owner.pid);
  return rules.now - fact.mtimeMs < rules.staleTempMs;
}
