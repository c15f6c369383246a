import { createReadStream, type Dirent } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { newArchiveHash } from '../core/checksum.js';
import { isValidModuleName } from '../core/module-name.js';
import { isValidVersion } from '../core/version.js';
import { ARCHIVE_FOLDER, type ArchiveStore, archiveKey } from './archive-store.js';
import type { BlobStore } from './blob/blob-store.js';
import { FsBlobStore } from './blob/fs-blob-store.js';

/** A file whose place in the store is `<module>/<version>/<sha256>.zip`. */
export interface StoredArchive {
  /** Where it is, for messages: its file, or its bucket URL. */
  path: string;
  /** Its blob key (`packages/...`). */
  key: string;
  /** Size and time as the listing gave them (bucket listings do; a disk walk does not). */
  listed?: { size: number; modified: Date };
  module: string;
  version: string;
  /** The checksum its name claims; whether its bytes agree is for hashFile to say. */
  checksum: string;
}

/** Anything else under the store root. */
export interface StrayEntry {
  path: string;
  /** Its blob key, when it is a blob (a bucket object, a file on disk), not a folder or a link. */
  key?: string;
  /** Path segments below the store root, for messages. */
  segments: string[];
  reason: string;
  directory: boolean;
}

export interface StoreScan {
  archives: StoredArchive[];
  strays: StrayEntry[];
}

const ARCHIVE_NAME = /^([0-9a-f]{64})\.zip$/;

/**
 * What the file at `segments` below the store root would be: an archive name, or why it is
 * not one. Names are checked with the same rules that build store paths, so a file is an
 * archive exactly when ArchiveStore.pathFor could have produced its path.
 */
export function classifyStorePath(
  segments: readonly string[],
): Omit<StoredArchive, 'path' | 'key'> | { reason: string } {
  const name = segments.at(-1) ?? '';
  if (name.endsWith('.part') || name.includes('.tmp-')) return { reason: 'temporary file' };
  const match = ARCHIVE_NAME.exec(name);
  if (!match?.[1]) return { reason: 'not an archive name (<sha256>.zip)' };
  const module = segments.slice(0, -2).join('/');
  const version = segments.at(-2) ?? '';
  if (segments.length < 4 || !isValidModuleName(module) || !isValidVersion(version)) {
    return { reason: 'not in a <module>/<version>/ folder' };
  }
  return { module, version, checksum: match[1] };
}

/**
 * Every archive and stray of an archive store: on disk the thorough walk below (which also
 * finds folders and links where files belong), in a bucket its listing.
 */
export async function scanArchives(store: ArchiveStore): Promise<StoreScan> {
  const { blobs } = store;
  if (blobs instanceof FsBlobStore) {
    const folder = ARCHIVE_FOLDER.slice(0, -1);
    const scan = await scanStore(join(blobs.root, folder));
    for (const stray of scan.strays) {
      if (!stray.directory && stray.reason !== 'not a regular file')
        stray.key = [folder, ...stray.segments].join('/');
    }
    return scan;
  }
  const scan: StoreScan = { archives: [], strays: [] };
  for await (const blob of blobs.list(ARCHIVE_FOLDER)) {
    const segments = blob.key.slice(ARCHIVE_FOLDER.length).split('/');
    const kind = classifyStorePath(segments);
    const path = blobs.locate(blob.key);
    if ('reason' in kind)
      scan.strays.push({ path, key: blob.key, segments, reason: kind.reason, directory: false });
    else
      scan.archives.push({
        path,
        key: blob.key,
        ...kind,
        listed: { size: blob.size, modified: blob.modified },
      });
  }
  scan.archives.sort(byPath);
  scan.strays.sort(byPath);
  return scan;
}

const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/**
 * Walks the store without following links. A folder is only stray when it sits where an
 * archive file belongs (it would block that archive's rename); other folders are walked, and
 * empty ones are left alone.
 */
export async function scanStore(root: string): Promise<StoreScan> {
  const scan: StoreScan = { archives: [], strays: [] };
  await walk(root, [], scan);
  scan.archives.sort(byPath);
  scan.strays.sort(byPath);
  return scan;
}

async function walk(dir: string, segments: string[], scan: StoreScan): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && segments.length === 0) return;
    throw error;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    const here = [...segments, entry.name];
    const kind = classifyStorePath(here);
    if (entry.isDirectory()) {
      if ('reason' in kind) await walk(path, here, scan);
      else
        scan.strays.push({
          path,
          segments: here,
          reason: 'a folder where an archive belongs',
          directory: true,
        });
    } else if (!entry.isFile()) {
      scan.strays.push({ path, segments: here, reason: 'not a regular file', directory: false });
    } else if ('reason' in kind) {
      scan.strays.push({ path, segments: here, reason: kind.reason, directory: false });
    } else {
      scan.archives.push({ path, key: archiveKey(kind.module, kind.version, kind.checksum), ...kind });
    }
  }
}

/** The sha256 of a file, streamed (archives can be large), and its size. */
export function hashFile(path: string): Promise<{ checksum: string; bytes: number }> {
  return hashStream(createReadStream(path));
}

/** The sha256 of a stored blob and its size; undefined when it is gone. */
export async function hashBlob(
  blobs: BlobStore,
  key: string,
): Promise<{ checksum: string; bytes: number } | undefined> {
  const stored = await blobs.read(key);
  return stored && hashStream(stored.body);
}

async function hashStream(stream: AsyncIterable<unknown>): Promise<{ checksum: string; bytes: number }> {
  const hash = newArchiveHash();
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { checksum: hash.digest('hex'), bytes };
}

/** Removes a stored archive or stray: by key where it is a blob, else the file or folder on disk. */
export async function removeStoreEntry(
  store: ArchiveStore,
  entry: { path: string; key?: string; directory?: boolean },
): Promise<void> {
  if (entry.key !== undefined && !entry.directory) await store.blobs.delete(entry.key);
  else await rm(entry.path, { force: true, recursive: entry.directory === true });
}
