import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { isValidModuleName } from '../core/module-name.js';
import { isValidVersion } from '../core/version.js';
import type { RegistryLayout } from '../registry/layout.js';
import { scanArchives } from '../store/archive-scan.js';
import type { ArchiveStore } from '../store/archive-store.js';
import { ASSET_FOLDER, type AssetStore } from '../store/asset-store.js';
import { FsBlobStore } from '../store/blob/fs-blob-store.js';
import type { AssetFolderFact, StoredArchiveFact, StoredFact, TempFact } from './garbage-selection.js';

const STAT_CONCURRENCY = 32;

/**
 * What gc looks at: the archives of data/packages (and temp files writers left there), the
 * version folders of data/assets, and the entries of data/tmp. Nothing else under data/ is
 * touched: indexes, state and symbols are not garbage of this kind.
 *
 * `referencedModules` lets the asset walk tell a version folder from a nested module's folder
 * whose name happens to read as a version (`a/b/1.0.0` the module, `2.0.0` its version).
 */
export async function scanStoredFiles(
  layout: RegistryLayout,
  store: ArchiveStore,
  assetStore: AssetStore,
  referencedModules: ReadonlySet<string>,
): Promise<StoredFact[]> {
  const [archives, assets, temps] = await Promise.all([
    scanStoredArchives(store),
    assetStore.blobs instanceof FsBlobStore
      ? scanAssets(layout.assetsDir, referencedModules)
      : scanAssetBlobs(assetStore, referencedModules),
    scanTempRoot(layout.tmpDir),
  ]);
  return [...archives, ...assets, ...temps];
}

async function scanStoredArchives(store: ArchiveStore): Promise<StoredFact[]> {
  const scan = await scanArchives(store);
  const limit = pLimit(STAT_CONCURRENCY);
  const archives = scan.archives.map(({ listed, ...archive }) =>
    limit(async (): Promise<StoredArchiveFact | undefined> => {
      // A bucket listing tells size and time; a disk walk needs a stat.
      const info = listed ?? (await store.blobs.stat(archive.key));
      if (!info) return undefined;
      return { kind: 'archive', ...archive, bytes: info.size, mtimeMs: info.modified.getTime() };
    }),
  );
  // A writer killed mid-write left its temp file beside the target (moveFile across file
  // systems); the other strays are `verify`'s business.
  const temps = scan.strays
    .filter((stray) => stray.reason === 'temporary file' && !stray.directory)
    .map((stray) => limit(() => tempFact(stray.path, undefined)));
  const found: Array<StoredFact | undefined> = await Promise.all([...archives, ...temps]);
  return found.filter((fact): fact is StoredFact => fact !== undefined);
}

/** Every prefix of every referenced module name: folders that lead to a module, not a version. */
function modulePrefixesOf(referencedModules: ReadonlySet<string>): Set<string> {
  const modulePrefixes = new Set<string>();
  for (const module of referencedModules) {
    const segments = module.split('/');
    for (let i = 1; i <= segments.length; i++) modulePrefixes.add(segments.slice(0, i).join('/'));
  }
  return modulePrefixes;
}

/** Whether the folder `segments` + `name` is a version's folder (the walk's one rule). */
function isVersionFolder(segments: string[], name: string, modulePrefixes: ReadonlySet<string>): boolean {
  const module = segments.join('/');
  return (
    segments.length >= 2 &&
    isValidModuleName(module) &&
    isValidVersion(name) &&
    !modulePrefixes.has([...segments, name].join('/'))
  );
}

/**
 * The same version folders in a bucket, where folders are key prefixes: each blob of assets/ is
 * filed under the first folder on its way down that is a version's.
 */
async function scanAssetBlobs(
  store: AssetStore,
  referencedModules: ReadonlySet<string>,
): Promise<StoredFact[]> {
  const modulePrefixes = modulePrefixesOf(referencedModules);
  const folders = new Map<string, AssetFolderFact & { keys: string[] }>();
  for await (const blob of store.blobs.list(ASSET_FOLDER)) {
    const segments = blob.key.slice(ASSET_FOLDER.length).split('/');
    // The last segment is the blob itself: files outside version folders are not ours to judge.
    for (let at = 2; at < segments.length - 1; at++) {
      if (!isVersionFolder(segments.slice(0, at), segments[at] as string, modulePrefixes)) continue;
      const prefix = `${ASSET_FOLDER}${segments.slice(0, at + 1).join('/')}/`;
      const fact = folders.get(prefix) ?? {
        kind: 'assets',
        path: store.blobs.locate(prefix.slice(0, -1)),
        module: segments.slice(0, at).join('/'),
        version: segments[at] as string,
        bytes: 0,
        files: 0,
        mtimeMs: 0,
        keys: [],
      };
      fact.bytes += blob.size;
      fact.files++;
      fact.mtimeMs = Math.max(fact.mtimeMs, blob.modified.getTime());
      fact.keys.push(blob.key);
      folders.set(prefix, fact);
      break;
    }
  }
  return [...folders.values()];
}

async function scanAssets(assetsDir: string, referencedModules: ReadonlySet<string>): Promise<StoredFact[]> {
  const modulePrefixes = modulePrefixesOf(referencedModules);
  const folders: Array<{ path: string; module: string; version: string }> = [];
  const walk = async (dir: string, segments: string[]): Promise<void> => {
    for (const entry of await readdirOrEmpty(dir)) {
      if (!entry.isDirectory()) continue; // files outside version folders are not ours to judge
      const here = [...segments, entry.name];
      if (isVersionFolder(segments, entry.name, modulePrefixes)) {
        folders.push({ path: join(dir, entry.name), module: segments.join('/'), version: entry.name });
      } else {
        await walk(join(dir, entry.name), here);
      }
    }
  };
  await walk(assetsDir, []);
  const limit = pLimit(STAT_CONCURRENCY);
  const facts = await Promise.all(
    folders.map((folder) =>
      limit(async (): Promise<AssetFolderFact> => {
        const usage = await treeUsage(folder.path);
        return { kind: 'assets', ...folder, ...usage };
      }),
    ),
  );
  return facts;
}

const PROCESS_FOLDER = /^(.+)-(\d+)$/;

async function scanTempRoot(tmpDir: string): Promise<StoredFact[]> {
  const entries = await readdirOrEmpty(tmpDir);
  const facts = await Promise.all(
    entries.map((entry) => {
      const owner = entry.isDirectory() ? PROCESS_FOLDER.exec(entry.name) : null;
      return tempFact(
        join(tmpDir, entry.name),
        owner ? { host: owner[1] as string, pid: Number(owner[2]) } : undefined,
      );
    }),
  );
  return facts.filter((fact): fact is TempFact => fact !== undefined);
}

async function tempFact(path: string, owner: TempFact['owner']): Promise<TempFact | undefined> {
  const usage = await treeUsage(path);
  if (usage.files === 0 && usage.mtimeMs === 0) return undefined; // gone meanwhile
  return { kind: 'temp', path, ...(owner ? { owner } : {}), ...usage };
}

/** Bytes and files below `path` (links not followed), and the newest mtime, its own included. */
async function treeUsage(path: string): Promise<{ bytes: number; files: number; mtimeMs: number }> {
  const usage = { bytes: 0, files: 0, mtimeMs: 0 };
  const visit = async (at: string): Promise<void> => {
    const info = await statOrGone(at);
    if (!info) return;
    usage.mtimeMs = Math.max(usage.mtimeMs, info.mtimeMs);
    if (!info.isDirectory()) {
      usage.files++;
      usage.bytes += info.size;
      return;
    }
    for (const entry of await readdirOrEmpty(at)) await visit(join(at, entry.name));
  };
  await visit(path);
  return usage;
}

async function statOrGone(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function readdirOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw error;
  }
}
