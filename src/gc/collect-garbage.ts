import { rm, rmdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, isAbsolute, relative, sep } from 'node:path';
import { isClustered } from '../coordination/cluster.js';
import { parseDuration } from '../core/duration.js';
import { describeError, RegistryError } from '../core/errors.js';
import { moduleMatcher } from '../core/module-glob.js';
import { moduleKey } from '../core/module-name.js';
import { isProcessAlive } from '../fs/temp-dirs.js';
import { acquireRegistryLock } from '../registry/lock.js';
import type { Registry } from '../registry/registry.js';
import type { IndexLog } from '../registry/source-indexes.js';
import { readLastDownloads } from '../status/last-downloads.js';
import { FsBlobStore } from '../store/blob/fs-blob-store.js';
import { type KeepReason, type StoredFact, selectGarbage } from './garbage-selection.js';
import { gatherReferences } from './references.js';
import { scanStoredFiles } from './stored-files.js';

export interface GcOptions {
  /** List what would go; remove nothing. */
  dryRun: boolean;
  /** Only files not downloaded (else not written) within this long go. */
  olderThanMs?: number;
  log: IndexLog;
  now?: () => number;
}

export interface RemovedEntry {
  kind: StoredFact['kind'];
  /** Relative to the registry folder, with `/`. */
  path: string;
  module?: string;
  version?: string;
  checksum?: string;
  bytes: number;
  files: number;
}

export interface GcReport {
  dryRun: boolean;
  /** What was removed (with --dry-run: what would be). */
  removed: RemovedEntry[];
  /** Bytes removed (would be). */
  freed: number;
  counts: { archives: number; assets: number; temp: number };
  /** Unreferenced entries left, by reason: `[gc] keep`, --older-than, a live process's temp files. */
  kept: Record<KeepReason, number>;
  /** Referencing lines read: served index, pull-through index, published versions. */
  references: { served: number; proxy: number; hosted: number };
  /** Served lines no enabled source offers any more (their archives stay until they leave the index). */
  staleServed: number;
  /** What could not be removed, and why. */
  failed: Array<{ path: string; error: string }>;
}

/** A download lasts at most [mirror] archive_timeout; a temp entry still twice that long is dead. */
const MIN_STALE_TEMP_MS = 3_600_000;

/**
 * Removes what nothing references (gc/references.ts) from data/packages, data/assets and
 * data/tmp, holding the registry lock so that no mirror, sync, rebuild or publish changes the
 * references between reading them and deleting.
 *
 * A running `serve` takes no lock to stream a file, and needs none: it only opens files its
 * index references, and an open file that is unlinked keeps streaming to its end (POSIX).
 * Its pull-through downloads land in its own data/tmp folder (kept while it lives) and are
 * renamed into data/packages only for lines of its index, which are references here.
 */
export async function collectGarbage(registry: Registry, options: GcOptions): Promise<GcReport> {
  const { layout, config } = registry;
  const now = options.now ?? Date.now;
  if (options.olderThanMs !== undefined && isClustered(config)) {
    // Each replica records only the downloads it served: one host's records say nothing of what
    // the others' clients use.
    throw new RegistryError(
      'USAGE',
      'gc --older-than is not available with [coordination]: download times are per replica',
      {
        hint: 'run gc without --older-than: it removes only what no index references',
      },
    );
  }
  // Brief: a mirror, sync or publish that meets gc waits for it instead of giving up.
  const lock = await acquireRegistryLock(layout.lockTarget, options.dryRun ? 'gc --dry-run' : 'gc', {
    brief: true,
    waitForBriefMs: 60_000,
  });
  try {
    const gathered = await gatherReferences(registry, options.log);
    const referencedVersions = new Set<string>();
    const referencedModules = new Set<string>();
    for (const key of gathered.references.lines) {
      const version = key.slice(0, key.lastIndexOf('#'));
      referencedVersions.add(version);
      referencedModules.add(version.slice(0, version.lastIndexOf('@')));
    }
    const facts = await scanStoredFiles(layout, registry.store, registry.assets, referencedModules);
    const archiveTimeout = parseDuration(config.mirror.archive_timeout) ?? 600_000;
    const selection = selectGarbage(facts, {
      references: gathered.references,
      pinned: moduleMatcher(config.gc.keep),
      olderThanMs: options.olderThanMs,
      downloads: await readLastDownloads(layout.lastDownloadsFile),
      now: now(),
      host: hostname(),
      pid: process.pid,
      isAlive: isProcessAlive,
      staleTempMs: Math.max(MIN_STALE_TEMP_MS, 2 * archiveTimeout),
    });

    const failed: GcReport['failed'] = [];
    const removed: RemovedEntry[] = [];
    const rel = (path: string) =>
      isAbsolute(path) ? relative(layout.root, path).split(sep).join('/') : path;
    for (const fact of order(selection.remove)) {
      if (!options.dryRun) {
        lock.assertHeld();
        try {
          // Archives are single blobs; an asset or temp folder goes whole.
          if (fact.kind === 'archive') await registry.blobs.delete(fact.key);
          else if (fact.kind === 'assets' && fact.keys) {
            for (const key of fact.keys) await registry.blobs.delete(key);
          } else await rm(fact.path, { recursive: true, force: true });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
            failed.push({ path: rel(fact.path), error: describeError(error) });
            continue;
          }
        }
        // Folders exist only on disk; a bucket has none to leave empty.
        const onDisk = registry.blobs instanceof FsBlobStore;
        if (onDisk && fact.kind !== 'temp' && !referencedVersions.has(moduleKey(fact.module, fact.version))) {
          const root = fact.kind === 'archive' ? layout.packagesDir : layout.assetsDir;
          await removeEmptyFolders(dirname(fact.path), root);
        }
      }
      removed.push(entryOf(fact, rel(fact.path)));
    }
    const kept: Record<KeepReason, number> = { pinned: 0, recent: 0, live: 0 };
    for (const { reason } of selection.kept) kept[reason]++;
    return {
      dryRun: options.dryRun,
      removed,
      freed: removed.reduce((sum, entry) => sum + entry.bytes, 0),
      counts: {
        archives: removed.filter((e) => e.kind === 'archive').length,
        assets: removed.filter((e) => e.kind === 'assets').length,
        temp: removed.filter((e) => e.kind === 'temp').length,
      },
      kept,
      references: gathered.counts,
      staleServed: gathered.staleServed,
      failed,
    };
  } finally {
    await lock.release();
  }
}

const KIND_ORDER: Record<StoredFact['kind'], number> = { archive: 0, assets: 1, temp: 2 };

/** Archives, then assets, then temp files; each by path, so reports read the same every time. */
function order(facts: StoredFact[]): StoredFact[] {
  return [...facts].sort(
    (a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0),
  );
}

function entryOf(fact: StoredFact, path: string): RemovedEntry {
  if (fact.kind === 'archive') {
    const { module, version, checksum, bytes } = fact;
    return { kind: 'archive', path, module, version, checksum, bytes, files: 1 };
  }
  if (fact.kind === 'assets') {
    const { module, version, bytes, files } = fact;
    return { kind: 'assets', path, module, version, bytes, files };
  }
  return { kind: 'temp', path, bytes: fact.bytes, files: fact.files };
}

/**
 * Removes `dir` and its parents up to (not including) `root` while they are empty. Only called
 * for versions nothing references, so no writer is about to rename a file into them.
 */
async function removeEmptyFolders(dir: string, root: string): Promise<void> {
  let at = dir;
  while (at !== root && at.startsWith(`${root}${sep}`)) {
    try {
      await rmdir(at);
    } catch {
      return; // not empty (or already gone): its parents are not empty either
    }
    at = dirname(at);
  }
}
