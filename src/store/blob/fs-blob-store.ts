import type { Dirent } from 'node:fs';
import { open, readdir, rm, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { RegistryError } from '../../core/errors.js';
import { writeFileAtomic } from '../../fs/atomic-write.js';
import { moveFile } from '../../fs/move-file.js';
import { type BlobInfo, type BlobRead, type BlobStore, isBlobKey } from './blob-store.js';

/**
 * Blobs as files below `root` (the registry's data/ folder), a key being the path below it.
 * Atomic by rename: a file only appears under its key when whole.
 */
export class FsBlobStore implements BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  get description(): string {
    return `${this.root}${sep}`;
  }

  locate(key: string): string {
    return this.pathOf(key);
  }

  /** The file of a key; refuses a key that is not plain segments or leaves the root. */
  pathOf(key: string): string {
    const path = join(this.root, ...key.split('/'));
    const rel = relative(this.root, path);
    if (!isBlobKey(key) || rel === '' || rel.startsWith('..') || rel.startsWith(sep)) {
      throw new RegistryError('USAGE', `refusing blob key ${JSON.stringify(key)}`);
    }
    return path;
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    const info = await stat(this.pathOf(key)).catch(() => undefined);
    return info?.isFile() ? { key, size: info.size, modified: info.mtime } : undefined;
  }

  async read(key: string): Promise<BlobRead | undefined> {
    const file = await open(this.pathOf(key), 'r').catch((error: NodeJS.ErrnoException) => {
      // Absent is an answer; a disk that cannot be read is not.
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    });
    if (!file) return undefined;
    try {
      // Size from the open handle, so it matches the bytes the stream gives.
      const info = await file.stat();
      if (!info.isFile() || info.size === 0) {
        await file.close();
        return info.isFile() ? { size: 0, body: Readable.from([]) } : undefined;
      }
      // The stream owns the handle and closes it when done or destroyed. `end` stops at the
      // known size, sparing the read that would only find the end of the file.
      return { size: info.size, body: file.createReadStream({ end: info.size - 1 }) };
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  async putFile(key: string, file: string): Promise<void> {
    await moveFile(file, this.pathOf(key));
  }

  async putBytes(key: string, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.pathOf(key), bytes);
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async *list(folder: string): AsyncIterable<BlobInfo> {
    if (folder !== '' && (!folder.endsWith('/') || !isBlobKey(folder.slice(0, -1)))) {
      throw new RegistryError('USAGE', `refusing blob folder ${JSON.stringify(folder)}`);
    }
    yield* this.walk(folder === '' ? this.root : this.pathOf(folder.slice(0, -1)), folder);
  }

  private async *walk(dir: string, prefix: string): AsyncIterable<BlobInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      const key = `${prefix}${entry.name}`;
      if (entry.isDirectory()) yield* this.walk(join(dir, entry.name), `${key}/`);
      else if (entry.isFile()) {
        const info = await stat(join(dir, entry.name)).catch(() => undefined);
        if (info) yield { key, size: info.size, modified: info.mtime };
      }
    }
  }
}
