import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { RegistryLayout } from '../registry/layout.js';
import { type ServedSymbols, servedSymbols } from '../registry/symbols-store.js';
import { matchesEtag } from './archive-route.js';
import { HttpError, notFound } from './http-error.js';
import type { SymbolsRefresher } from './symbols-refresher.js';

export interface SymbolsContext {
  layout: RegistryLayout;
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
    const served = await servedSymbols(ctx.layout, ctx.sources);
    if (!served) break;
    if (await sendSymbols(served, req, res)) return;
  }
  if (ctx.refresher?.lastFailed) {
    throw new HttpError(502, 'symbols.zip could not be fetched from the sources (see the server log)');
  }
  throw notFound('no source of this registry provides symbols.zip');
}

/** Sends the copy; false when the file is not the one its record describes (replaced meanwhile). */
async function sendSymbols(
  served: ServedSymbols,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  const etag = `"${served.record.sha256}"`;
  const file = await open(served.path, 'r').catch(() => undefined);
  if (!file) return false;
  let streaming = false;
  try {
    const info = await file.stat();
    if (!info.isFile() || info.size !== served.record.size) return false;
    const headers = { ETag: etag, 'Cache-Control': 'no-cache' };
    if (matchesEtag(req.headers['if-none-match'], etag)) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'application/zip',
      'Content-Length': String(info.size),
    });
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    streaming = true;
    await pipeline(file.createReadStream({ end: Math.max(0, info.size - 1) }), res).catch(() => {
      res.destroy(); // the client left, or the disk failed: the cut tells the client
    });
    return true;
  } finally {
    if (!streaming) await file.close();
  }
}
