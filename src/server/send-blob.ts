import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { BlobRead } from '../store/blob/blob-store.js';

/**
 * Answers 200 with a stored blob (an archive, a wasm, symbols.zip) streamed from its store, its
 * size as Content-Length; HEAD gets the headers only and the stream is let go.
 */
export async function sendBlob(
  req: IncomingMessage,
  res: ServerResponse,
  blob: BlobRead,
  headers: OutgoingHttpHeaders,
): Promise<void> {
  res.writeHead(200, { ...headers, 'Content-Length': String(blob.size) });
  if (req.method === 'HEAD') {
    blob.body.destroy();
    res.end();
    return;
  }
  await pipeline(blob.body, res).catch(() => {
    // The client went away, or the store failed mid-body: the cut connection tells the client.
    res.destroy();
  });
}
