import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { describeError } from '../core/errors.js';
import { writeFileAtomic } from '../fs/atomic-write.js';
import { moveFile } from '../fs/move-file.js';
import { pathExists } from '../fs/path-exists.js';
import { zipProblem } from '../fs/zip-readable.js';
import type { DownloadLimits } from '../upstream/archive-download.js';
import { fetchSymbols } from '../upstream/symbols-download.js';
import type { UpstreamSource } from '../upstream/upstream-source.js';
import type { RegistryLayout } from './layout.js';

/**
 * Each source's editor symbols (PROTOCOL.md 5) as `data/symbols/<source>/symbols.zip`, with
 * `symbols.json` beside it: the upstream's ETag (for If-None-Match), the sha256 we serve as our
 * own ETag, and when the source was last asked. The zip is renamed into place before its
 * record, so a record never names bytes that are not there yet.
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

export interface SymbolsFiles {
  dir: string;
  zip: string;
  record: string;
}

export function symbolsFiles(layout: RegistryLayout, source: string): SymbolsFiles {
  const dir = join(layout.symbolsDir, source);
  return { dir, zip: join(dir, 'symbols.zip'), record: join(dir, 'symbols.json') };
}

export async function readSymbolsRecord(files: SymbolsFiles): Promise<SymbolsRecord | undefined> {
  try {
    const value = JSON.parse(await readFile(files.record, 'utf8')) as Partial<SymbolsRecord>;
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
  layout: RegistryLayout,
  upstream: UpstreamSource,
  options: SymbolsRefreshOptions,
): Promise<SymbolsRefresh> {
  const files = symbolsFiles(layout, upstream.name);
  const url = upstream.symbolsUrl;
  const known = await readSymbolsRecord(files);
  const held =
    known && !known.absent && known.url === url && (await pathExists(files.zip)) ? known : undefined;
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
        await moveFile(answer.file, files.zip);
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
    await rm(files.zip, { force: true });
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
  layout: RegistryLayout,
  source: string,
  zip: string,
  sha256: string,
  size: number,
): Promise<void> {
  const files = symbolsFiles(layout, source);
  await moveFile(zip, files.zip);
  const at = new Date().toISOString();
  await writeRecord(files, { url: `bundle:${source}`, sha256, size, fetched_at: at, checked_at: at });
}

/**
 * Every source at once; one failing does not stop the others. Bundle and git sources are
 * skipped: a bundle's symbols arrive only with `import`, and a git repository has none.
 */
export function refreshSymbols(
  layout: RegistryLayout,
  upstreams: UpstreamSource[],
  options: SymbolsRefreshOptions,
): Promise<SymbolsRefresh[]> {
  const asked = upstreams.filter((upstream) => upstream.hasHttpService);
  return Promise.all(asked.map((upstream) => refreshSourceSymbols(layout, upstream, options)));
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
  path: string;
  record: SymbolsRecord;
}

/**
 * The copy to serve: that of the first source, in priority order, that holds one. Sources
 * are asked in the order given (highest priority first).
 */
export async function servedSymbols(
  layout: RegistryLayout,
  sources: readonly string[],
): Promise<ServedSymbols | undefined> {
  for (const source of sources) {
    const files = symbolsFiles(layout, source);
    const record = await readSymbolsRecord(files);
    if (!record || record.absent || !record.sha256) continue;
    if (await pathExists(files.zip)) return { source, path: files.zip, record };
  }
  return undefined;
}

async function writeRecord(files: SymbolsFiles, record: SymbolsRecord): Promise<void> {
  await writeFileAtomic(files.record, `${JSON.stringify(record, null, 2)}\n`);
}

/**
 * Stored copies that `moon` could not unpack: not a readable zip, or not the size their record
 * says. Cheap: no entry is inflated. (A source folder without a zip is fine: it has none.)
 */
export async function damagedSymbols(
  layout: RegistryLayout,
): Promise<Array<{ path: string; detail: string }>> {
  const sources = await readdir(layout.symbolsDir).catch(() => [] as string[]);
  const damaged: Array<{ path: string; detail: string }> = [];
  for (const source of sources.sort()) {
    const files = symbolsFiles(layout, source);
    const size = await stat(files.zip).then(
      (info) => info.size,
      () => undefined,
    );
    if (size === undefined) continue;
    const record = await readSymbolsRecord(files);
    const problem =
      (await zipProblem(files.zip)) ??
      (record?.size !== undefined && record.size !== size
        ? `${size} bytes, but ${record.size} were stored`
        : undefined);
    if (problem) damaged.push({ path: files.zip, detail: `symbols.zip of source "${source}": ${problem}` });
  }
  return damaged;
}
