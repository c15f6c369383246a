import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ServedSymbols, servedSymbols } from '../registry/symbols-store.js';
import type { BlobStore } from '../store/blob/blob-store.js';
import { matchesEtag } from './archive-route.js';
import { HttpError, notFound } from './http-error.js';
import { sendBlob } from './send-blob.js';
import type { SymbolsRefresher } from './symbols-refresher.js';

export interface SymbolsContext {
  blobs: BlobStore;
  /** Enabled source names, highest priority first: the first holding a copy is served. */
  sources: readonly string[];
  /** Pull-through mode: asks the sources on request. */
  refresher: SymbolsRefresher | undefined;
}

/**
 * `GET|HEAD /symbols.zip`: the highest-priority source's stored copy, with its sha256 as ETag
 * and 304 for a matching If-None-Match (`moon update` asks after every index update).
 */
export async function handleSymbols(
  ctx: SymbolsContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  await ctx.refresher?.beforeServing();
  // The zip is replaced before its record: a size that does not match means we read between
  // the two renames, and the record is read again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const served = await servedSymbols(ctx.blobs, ctx.sources);
    if (!served) break;
    if (await sendSymbols(ctx.blobs, served, req, res)) return;
  }
  if (ctx.refresher?.lastFailed) {
    throw new HttpError(502, 'symbols.zip could not be fetched from the sources (see the server log)');
  }
  throw notFound('no source of this registry provides symbols.zip');
}

/** Sends the copy; false when the blob is not the one its record describes (replaced meanwhile). */
async function sendSymbols(
  blobs: BlobStore,
  served: ServedSymbols,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  const etag = `"${served.record.sha256}"`;
  const stored = await blobs.read(served.key);
  if (!stored) return false;
  if (stored.size !== served.record.size) {
    stored.body.destroy();
    return false;
  }
  const headers = { ETag: etag, 'Cache-Control': 'no-cache' };
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    stored.body.destroy();
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  await sendBlob(req, res, stored, { ...headers, 'Content-Type': 'application/zip' });
  return true;
}
