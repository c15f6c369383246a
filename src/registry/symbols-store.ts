import { rm } from 'node:fs/promises';
import type { Dispatcher } from 'undici';
import { describeError } from '../core/errors.js';
import { zipProblem } from '../fs/zip-readable.js';
import type { BlobStore } from '../store/blob/blob-store.js';
import { readBlobText, withLocalCopy } from '../store/blob/local-copy.js';
import type { DownloadLimits } from '../upstream/archive-download.js';
import { fetchSymbols } from '../upstream/symbols-download.js';
import type { UpstreamSource } from '../upstream/upstream-source.js';

/**
 * Each source's editor symbols (PROTOCOL.md 5) as the blob `symbols/<source>/symbols.zip` (in
 * data/ or the bucket), with `symbols.json` beside it: the upstream's ETag (for If-None-Match),
 * the sha256 we serve as our own ETag, and when the source was last asked. The zip is stored
 * before its record, so a record never names bytes that are not there yet.
 */
export interface SymbolsRecord {
  /** The URL asked: a record of another URL (symbols_url changed) is not revalidated. */
  url: string;
  /** The source answered 404 at checked_at: it has no symbols. */
  absent?: boolean;
  /** The upstream's ETag of the stored zip, if it sent one. */
  etag?: string;
  sha256?: string;
  size?: number;
  /** When the stored zip arrived. */
  fetched_at?: string;
  /** When the source last answered (200, 304 or 404). */
  checked_at: string;
}

/** Where a source's copy lives: blob keys, and the store that holds them. */
export interface SymbolsFiles {
  blobs: BlobStore;
  zip: string;
  record: string;
}

export const SYMBOLS_FOLDER = 'symbols/';

export function symbolsFiles(blobs: BlobStore, source: string): SymbolsFiles {
  return {
    blobs,
    zip: `${SYMBOLS_FOLDER}${source}/symbols.zip`,
    record: `${SYMBOLS_FOLDER}${source}/symbols.json`,
  };
}

export async function readSymbolsRecord(files: SymbolsFiles): Promise<SymbolsRecord | undefined> {
  try {
    const text = await readBlobText(files.blobs, files.record);
    if (text === undefined) return undefined;
    const value = JSON.parse(text) as Partial<SymbolsRecord>;
    if (typeof value.url !== 'string' || typeof value.checked_at !== 'string') return undefined;
    return value as SymbolsRecord;
  } catch {
    return undefined; // none yet, or unreadable: the next refresh writes a good one
  }
}

/** updated: new bytes; unchanged: 304; absent: 404 (a copy kept before is removed); failed: the old copy stays. */
export type SymbolsRefreshStatus = 'updated' | 'unchanged' | 'absent' | 'failed';

export interface SymbolsRefresh {
  source: string;
  status: SymbolsRefreshStatus;
  /** Bytes of the new zip (updated). */
  bytes?: number;
  error?: string;
}

export interface SymbolsRefreshOptions {
  tmpDir: string;
  dispatcherFor(source: UpstreamSource): Dispatcher;
  limits: DownloadLimits;
}

/**
 * Asks one source for its symbols.zip, with If-None-Match when we hold its copy. A new zip
 * replaces the old one atomically; 304 only notes the time; 404 means the source has none, so
 * its old copy goes (the next source in priority is served instead); any failure keeps
 * everything as it was.
 */
export async function refreshSourceSymbols(
  blobs: BlobStore,
  upstream: UpstreamSource,
  options: SymbolsRefreshOptions,
): Promise<SymbolsRefresh> {
  const files = symbolsFiles(blobs, upstream.name);
  const url = upstream.symbolsUrl;
  const known = await readSymbolsRecord(files);
  const held =
    known && !known.absent && known.url === url && (await blobs.stat(files.zip)) ? known : undefined;
  const checkedAt = new Date().toISOString();
  try {
    const answer = await fetchSymbols({
      url,
      headers: upstream.archiveHeaders(url),
      etag: held?.etag,
      tmpDir: options.tmpDir,
      dispatcher: options.dispatcherFor(upstream),
      limits: options.limits,
      label: `symbols.zip from ${upstream.name}`,
    });
    if (answer.status === 'not-modified' && held) {
      await writeRecord(files, {
        ...held,
        ...(answer.etag ? { etag: answer.etag } : {}),
        checked_at: checkedAt,
      });
      return { source: upstream.name, status: 'unchanged' };
    }
    if (answer.status === 'modified') {
      try {
        await blobs.putFile(files.zip, answer.file);
      } finally {
        await rm(answer.file, { force: true });
      }
      await writeRecord(files, {
        url,
        ...(answer.etag ? { etag: answer.etag } : {}),
        sha256: answer.sha256,
        size: answer.size,
        fetched_at: checkedAt,
        checked_at: checkedAt,
      });
      return { source: upstream.name, status: 'updated', bytes: answer.size };
    }
    // 404 (or a 304 for a copy we do not hold, which cannot happen without If-None-Match).
    await writeRecord(files, { url, absent: true, checked_at: checkedAt });
    await blobs.delete(files.zip);
    return { source: upstream.name, status: 'absent' };
  } catch (error) {
    return { source: upstream.name, status: 'failed', error: upstream.redact(describeError(error)) };
  }
}

/**
 * Takes a symbols.zip that came with an imported bundle (already checked against the bundle's
 * manifest) as `source`'s copy: the zip moves in first, then a record of our own.
 */
export async function storeImportedSymbols(
  blobs: BlobStore,
  source: string,
  zip: string,
  sha256: string,
  size: number,
): Promise<void> {
  const files = symbolsFiles(blobs, source);
  await blobs.putFile(files.zip, zip);
  const at = new Date().toISOString();
  await writeRecord(files, { url: `bundle:${source}`, sha256, size, fetched_at: at, checked_at: at });
}

/**
 * Every source at once; one failing does not stop the others. Bundle and git sources are
 * skipped: a bundle's symbols arrive only with `import`, and a git repository has none.
 */
export function refreshSymbols(
  blobs: BlobStore,
  upstreams: UpstreamSource[],
  options: SymbolsRefreshOptions,
): Promise<SymbolsRefresh[]> {
  const asked = upstreams.filter((upstream) => upstream.hasHttpService);
  return Promise.all(asked.map((upstream) => refreshSourceSymbols(blobs, upstream, options)));
}

/** One line for a terminal or a log. */
export function describeSymbolsRefresh(refresh: SymbolsRefresh): string {
  const what = `symbols.zip of source "${refresh.source}"`;
  switch (refresh.status) {
    case 'updated':
      return `${what}: updated (${refresh.bytes} bytes)`;
    case 'unchanged':
      return `${what}: unchanged`;
    case 'absent':
      return `${what}: the source has none (404)`;
    case 'failed':
      return `${refresh.error}; the stored copy of source "${refresh.source}", if any, is kept`;
  }
}

export interface ServedSymbols {
  source: string;
  /** The zip's blob key. */
  key: string;
  record: SymbolsRecord;
}

/**
 * The copy to serve: that of the first source, in priority order, that holds one. Sources
 * are asked in the order given (highest priority first).
 */
export async function servedSymbols(
  blobs: BlobStore,
  sources: readonly string[],
): Promise<ServedSymbols | undefined> {
  for (const source of sources) {
    const files = symbolsFiles(blobs, source);
    const record = await readSymbolsRecord(files);
    if (!record || record.absent || !record.sha256) continue;
    if (await blobs.stat(files.zip)) return { source, key: files.zip, record };
  }
  return undefined;
}

async function writeRecord(files: SymbolsFiles, record: SymbolsRecord): Promise<void> {
  await files.blobs.putBytes(files.record, Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
}

/**
 * Stored copies that `moon` could not unpack: not a readable zip, or not the size their record
 * says. Cheap: no entry is inflated (a bucket's copy is read into `tmpDir` first). A source
 * folder without a zip is fine: it has none. `path` is where the copy is, for messages; `key`
 * its blob.
 */
export async function damagedSymbols(
  blobs: BlobStore,
  tmpDir: string,
): Promise<Array<{ path: string; key: string; detail: string }>> {
  const zips: Array<{ source: string; key: string; size: number }> = [];
  for await (const blob of blobs.list(SYMBOLS_FOLDER)) {
    const [source, name, ...rest] = blob.key.slice(SYMBOLS_FOLDER.length).split('/');
    if (source && name === 'symbols.zip' && rest.length === 0)
      zips.push({ source, key: blob.key, size: blob.size });
  }
  const damaged: Array<{ path: string; key: string; detail: string }> = [];
  for (const { source, key, size } of zips.sort((a, b) => (a.source < b.source ? -1 : 1))) {
    const record = await readSymbolsRecord(symbolsFiles(blobs, source));
    const problem =
      (await withLocalCopy(blobs, key, tmpDir, (file) =>
        file ? zipProblem(file) : Promise.resolve(undefined),
      )) ??
      (record?.size !== undefined && record.size !== size
        ? `${size} bytes, but ${record.size} were stored`
        : undefined);
    if (problem) {
      damaged.push({
        path: blobs.locate(key),
        key,
        detail: `symbols.zip of source "${source}": ${problem}`,
      });
    }
  }
  return damaged;
}
