import { createReadStream, type Dirent } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import { newArchiveHash } from '../core/checksum.js';
import { RegistryError } from '../core/errors.js';
import { quoteForLog } from '../core/log-text.js';
import { isValidModuleName, moduleKey } from '../core/module-name.js';
import { isValidVersion } from '../core/version.js';
import { writeFileAtomic } from '../fs/atomic-write.js';
import { moveFile } from '../fs/move-file.js';
import { pathExists } from '../fs/path-exists.js';
import type { MergedCatalog } from '../index/merged-catalog.js';
import { ServedIndex } from '../index/served-index.js';
import type { RegistryLayout } from './layout.js';
import { withRegistryLock } from './lock.js';
import type { Registry } from './registry.js';

/**
 * A data folder is made on first use, and moonbit-registry-tools' data folder is taken over as
 * it is. Its `index/` is a git work tree (possibly without commits) where ours is a bare
 * repository, and its archives sit at `packages/<owner>/<name>/<version>.zip` where ours are
 * `packages/<module>/<version>/<sha256>.zip`. Both move under `legacy/` in one locked step, and
 * each old archive joins the store once a source's index lists its checksum
 * (adoptLegacyArchives, run by mirror and sync), so nothing is downloaded again.
 *
 * The old index's history is not served: nothing proves that a git repository found at
 * data_dir/index holds only index files in every commit, and serving it would publish whatever
 * it does hold. Clients of the old index lose nothing: `moon` clones again when its pull fails
 * (PROTOCOL.md 2).
 */
export async function prepareDataDir(
  layout: RegistryLayout,
  registryName: string,
  notice: (message: string) => void,
): Promise<void> {
  if (await new ServedIndex(layout.indexDir).headFast()) return;
  // Brief: commands started together on a fresh folder wait for the first instead of failing.
  const options = { waitForBriefMs: 60_000, brief: true };
  await withRegistryLock(layout.lockTarget, 'prepare the data folder', options, () =>
    createOrTakeOver(layout, registryName, notice),
  );
}

async function createOrTakeOver(
  layout: RegistryLayout,
  registryName: string,
  notice: (message: string) => void,
): Promise<void> {
  const served = new ServedIndex(layout.indexDir);
  if (await served.head()) return; // another process was first
  const oldIndex = join(layout.legacyDir, 'index');
  let movedIndex = false;
  if (await pathExists(join(layout.indexDir, '.git'))) {
    if (await pathExists(oldIndex)) {
      throw new RegistryError('CONFIG', `cannot take over ${layout.indexDir}: ${oldIndex} exists already`, {
        hint: 'move one of them away',
      });
    }
    await mkdir(layout.legacyDir, { recursive: true });
    await rename(layout.indexDir, oldIndex);
    movedIndex = true;
  } else if ((await pathExists(layout.indexDir)) && !(await pathExists(join(layout.indexDir, 'HEAD')))) {
    throw new RegistryError('CONFIG', `${layout.indexDir} is not an index repository`, {
      hint: 'move it away; the registry makes a new one on first use',
    });
  }
  const moved = await moveLegacyArchives(layout);
  await mkdir(layout.packagesDir, { recursive: true });
  await mkdir(layout.sourcesDir, { recursive: true });
  await served.initialize(registryName);
  if (!movedIndex && moved === 0) {
    notice(`created the data folder ${layout.dataDir}`);
    return;
  }
  const parts = [
    movedIndex ? `its index is kept, not served, in ${relative(layout.dataDir, oldIndex)}` : '',
    moved > 0
      ? `${moved} archive(s) wait in ${relative(layout.dataDir, legacyPackagesDir(layout))} and join the store at the next mirror or sync whose sources list their checksums`
      : '',
  ];
  notice(
    `took over moonbit-registry-tools' data folder ${layout.dataDir}: ${parts.filter(Boolean).join('; ')}`,
  );
}

function legacyPackagesDir(layout: RegistryLayout): string {
  return join(layout.legacyDir, 'packages');
}

/** An archive of moonbit-registry-tools: `<owner>/<name...>/<version>.zip`, not a store file. */
function legacyArchiveRef(relPath: string): { module: string; version: string } | undefined {
  const parts = relPath.split(sep);
  const file = parts.pop() ?? '';
  if (!file.endsWith('.zip') || /^[0-9a-f]{64}\.zip$/.test(file) || parts.length < 2) return undefined;
  const module = parts.join('/');
  const version = file.slice(0, -'.zip'.length);
  return isValidModuleName(module) && isValidVersion(version) ? { module, version } : undefined;
}

async function* zipFiles(dir: string): AsyncGenerator<string> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* zipFiles(path);
    else if (entry.isFile() && entry.name.endsWith('.zip')) yield path;
  }
}

/** Moves the old layout's archives out of packages/, where the store would not find them. */
async function moveLegacyArchives(layout: RegistryLayout): Promise<number> {
  const rels = (await collect(zipFiles(layout.packagesDir)))
    .map((path) => relative(layout.packagesDir, path))
    .filter((rel) => legacyArchiveRef(rel) !== undefined);
  const limit = pLimit(16);
  await Promise.all(
    rels.map((rel) =>
      limit(() => moveFile(join(layout.packagesDir, rel), join(legacyPackagesDir(layout), rel))),
    ),
  );
  return rels.length;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

interface UnmatchedArchive {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
  reason: string;
}

export interface LegacyAdoption {
  /** Archives that joined the store. */
  adopted: number;
  /** Archives no enabled source lists with their checksum (still in legacy/packages). */
  unmatched: number;
}

/**
 * Moves each waiting moonbit-registry-tools archive into the store when an enabled source (or
 * the hosted index) lists its module@version with its checksum; the others stay and are
 * reported once, in `legacy/unmatched.json` and a warning, when that list changes. Called with
 * the registry lock held.
 */
export async function adoptLegacyArchives(
  registry: Registry,
  merged: MergedCatalog,
  warn: (message: string) => void,
): Promise<LegacyAdoption> {
  const dir = legacyPackagesDir(registry.layout);
  const reportPath = join(registry.layout.legacyDir, 'unmatched.json');
  const before = await readUnmatched(reportPath);
  if (before === undefined && !(await pathExists(dir))) return { adopted: 0, unmatched: 0 };
  const known = new Map((before ?? []).map((u) => [u.path, u]));
  const adoptOne = async (path: string): Promise<'adopted' | UnmatchedArchive | undefined> => {
    const rel = relative(dir, path);
    const ref = legacyArchiveRef(rel);
    if (!ref) return undefined;
    const info = await stat(path);
    const cached = known.get(rel);
    const fresh = cached && cached.size === info.size && cached.mtimeMs === info.mtimeMs;
    const sha256 = fresh ? cached.sha256 : await hashFile(path);
    const candidates = merged.candidates(ref.module, ref.version);
    if (candidates.some((c) => c.entry.checksum === sha256)) {
      if (await registry.store.has(ref.module, ref.version, sha256)) await rm(path);
      else await registry.store.put(ref.module, ref.version, sha256, path);
      return 'adopted';
    }
    const reason =
      candidates.length === 0
        ? 'no enabled source lists this version'
        : `checksum ${sha256.slice(0, 12)}… differs from ${candidates.map((c) => `${c.source}'s`).join(', ')}`;
    return { path: rel, size: info.size, mtimeMs: info.mtimeMs, sha256, reason };
  };
  // Thousands of small files: hashed and moved a few at a time, not one after another.
  const limit = pLimit(16);
  const outcomes = await Promise.all(
    (await collect(zipFiles(dir))).map((path) => limit(() => adoptOne(path))),
  );
  const adopted = outcomes.filter((o) => o === 'adopted').length;
  const unmatched = outcomes
    .filter((o): o is UnmatchedArchive => typeof o === 'object')
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const changed = JSON.stringify(unmatched) !== JSON.stringify(before ?? []);
  if (changed) {
    await writeFileAtomic(reportPath, `${JSON.stringify(unmatched, null, 2)}\n`);
    if (unmatched.length > 0) {
      const named = unmatched
        .slice(0, 10)
        .map((u) => {
          const ref = legacyArchiveRef(u.path);
          return `${ref ? quoteForLog(moduleKey(ref.module, ref.version)) : u.path} (${u.reason})`;
        })
        .join(', ');
      const more = unmatched.length > 10 ? ` and ${unmatched.length - 10} more` : '';
      warn(
        `${unmatched.length} moonbit-registry-tools archive(s) match no source's checksum and stay in ${relative(registry.layout.dataDir, dir)}: ${named}${more} (list: ${relative(registry.layout.dataDir, reportPath)})`,
      );
    }
  }
  return { adopted, unmatched: unmatched.length };
}

async function readUnmatched(path: string): Promise<UnmatchedArchive[] | undefined> {
  try {
    const list: unknown = JSON.parse(await readFile(path, 'utf8'));
    return Array.isArray(list) ? (list as UnmatchedArchive[]) : undefined;
  } catch {
    return undefined;
  }
}

async function hashFile(path: string): Promise<string> {
  const hash = newArchiveHash();
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}
