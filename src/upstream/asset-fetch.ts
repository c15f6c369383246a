import { type Dispatcher, request } from 'undici';
import {
  type AssetPackage,
  assetFileName,
  describeAssetPackage,
  formatSha256Text,
  parseSha256Text,
} from '../core/asset-path.js';
import { describeError } from '../core/errors.js';
import type { AssetStore } from '../store/asset-store.js';
import { backoffDelay, DownloadError, type DownloadLimits, downloadArchive } from './archive-download.js';
import { USER_AGENT } from './http-agent.js';
import type { UpstreamSource } from './upstream-source.js';

export interface AssetFetchOptions {
  store: AssetStore;
  /** This process's temp folder, on the same file system as the store. */
  tmpDir: string;
  dispatcher: Dispatcher;
  /** The wasm's bounds: [mirror] max_archive_size and archive_timeout, as for archives. */
  limits: DownloadLimits;
  /** Further attempts after a passing failure (5xx, reset, timeout, short body). */
  retries: number;
  onRetry?(label: string, attempt: number, reason: string): void;
}

/** stored: both files verified and in data/assets; absent: the source has no asset (404). */
export type AssetFetchResult = { result: 'stored'; bytes: number } | { result: 'absent' };

/** A `.sha256` is one line; anything much longer is not one. */
const MAX_SHA256_BYTES = 1024;

/**
 * Fetches one package's prebuilt wasm from `upstream`: first its `.sha256` (a 404 there means
 * "no asset"), then the wasm, kept only when its sha256 is the one the `.sha256` names. The
 * wasm is renamed into place from data/tmp, then the `.sha256` (rewritten as `<hex>  <file>`):
 * a crash in between leaves a wasm without its `.sha256`, which counts as not stored. Throws
 * DownloadError (code CHECKSUM for a mismatch) after the retries.
 */
export async function fetchAsset(
  upstream: UpstreamSource,
  pkg: AssetPackage,
  options: AssetFetchOptions,
): Promise<AssetFetchResult> {
  const label = `${describeAssetPackage(pkg)} (wasm) from ${upstream.name}`;
  return withRetries(label, options, async () => {
    const shaUrl = upstream.assetUrl({ ...pkg, kind: 'sha256' });
    const shaText = await fetchSmallText(shaUrl, upstream, options, label);
    if (shaText === undefined) return { result: 'absent' };
    const fileName = assetFileName(pkg, 'wasm');
    const hex = parseSha256Text(shaText, fileName);
    if (hex === undefined) {
      throw new DownloadError(`${label}: ${shaUrl} is not a sha256 line for ${fileName}`, {
        retryable: false,
      });
    }
    const wasmUrl = upstream.assetUrl({ ...pkg, kind: 'wasm' });
    const bytes = await downloadArchive({
      url: wasmUrl,
      headers: upstream.archiveHeaders(wasmUrl),
      expectedChecksum: hex,
      keep: (file) => options.store.put({ ...pkg, kind: 'wasm' }, file),
      tmpDir: options.tmpDir,
      dispatcher: options.dispatcher,
      label,
      limits: options.limits,
    });
    await options.store.putBytes({ ...pkg, kind: 'sha256' }, Buffer.from(formatSha256Text(hex, fileName)));
    return { result: 'stored', bytes };
  });
}

async function withRetries<T>(
  label: string,
  options: AssetFetchOptions,
  attempt: () => Promise<T>,
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof DownloadError) || !error.retryable || n >= options.retries) throw error;
      options.onRetry?.(label, n + 1, describeError(error));
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(n)));
    }
  }
}

/** The body of a small text file; undefined for a 404. */
async function fetchSmallText(
  url: string,
  upstream: UpstreamSource,
  options: AssetFetchOptions,
  label: string,
): Promise<string | undefined> {
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'GET',
      dispatcher: options.dispatcher,
      headers: { 'user-agent': USER_AGENT, ...upstream.archiveHeaders(url) },
      signal: AbortSignal.timeout(options.limits.deadlineMs),
    });
  } catch (error) {
    throw new DownloadError(`${label}: request to ${url} failed: ${describeError(error)}`, {
      retryable: true,
      unreachable: true,
    });
  }
  if (response.statusCode !== 200) {
    await response.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    if (response.statusCode === 404) return undefined;
    const status = response.statusCode;
    const retryable = status === 408 || status === 429 || status >= 500;
    throw new DownloadError(`${label}: ${url} answered HTTP ${status}`, { retryable, status });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_SHA256_BYTES) {
        response.body.destroy();
        throw new DownloadError(`${label}: ${url} is longer than a sha256 line`, { retryable: false });
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (error instanceof DownloadError) throw error;
    throw new DownloadError(`${label}: body from ${url} broke off: ${describeError(error)}`, {
      retryable: true,
    });
  }
  return Buffer.concat(chunks).toString('utf8');
}
