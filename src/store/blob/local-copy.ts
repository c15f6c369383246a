import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';

/**
 * Runs `use` with a local file holding the blob, for readers that need random access (a zip's
 * central directory): the stored file itself on disk, a temp copy in `tmpDir` (removed after)
 * from a bucket. `use` gets undefined when there is no such blob.
 */
export async function withLocalCopy<T>(
  blobs: BlobStore,
  key: string,
  tmpDir: string,
  use: (path: string | undefined) => Promise<T>,
): Promise<T> {
  if (blobs instanceof FsBlobStore) return use((await blobs.stat(key)) ? blobs.pathOf(key) : undefined);
  const stored = await blobs.read(key);
  if (!stored) return use(undefined);
  await mkdir(tmpDir, { recursive: true });
  const temp = join(tmpDir, `${randomBytes(6).toString('hex')}.copy`);
  try {
    await pipeline(stored.body, createWriteStream(temp, { flags: 'wx' }));
    return await use(temp);
  } finally {
    await rm(temp, { force: true });
  }
}

/** A small blob (a record, a head) as text; undefined when there is none. */
export async function readBlobText(blobs: BlobStore, key: string): Promise<string | undefined> {
  const stored = await blobs.read(key);
  if (!stored) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of stored.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
