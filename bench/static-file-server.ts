/**
 * The baseline of the proxy benchmark's warm-throughput measurement: a plain `node:http` static
 * file server, run as its own child process like the registry. Each GET maps the URL path onto
 * a file under the root folder and streams it: open, fstat for Content-Length, read stream into
 * the response. No index lookup, no logging, no caching of bodies in memory: the same disk work
 * per request as the registry's handler for a stored archive, without anything else.
 *
 *   node --import tsx bench/static-file-server.ts ROOT
 *
 * Listens on 127.0.0.1 at a free port and prints `listening http://127.0.0.1:PORT` on stdout.
 * Stops on SIGTERM or SIGINT.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

const rootArg = process.argv[2];
if (!rootArg) {
  process.stderr.write('usage: static-file-server.ts ROOT\n');
  process.exit(2);
}
const root = path.resolve(rootArg);

function sendStatus(res: http.ServerResponse, status: number): void {
  const text = `${http.STATUS_CODES[status] ?? 'error'}\n`;
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** The file under root that a URL path names, or undefined for anything that leaves root. */
function fileFor(url: string): string | undefined {
  const queryAt = url.indexOf('?');
  let decoded: string;
  try {
    decoded = decodeURIComponent(queryAt < 0 ? url : url.slice(0, queryAt));
  } catch {
    return undefined;
  }
  const file = path.resolve(root, `.${decoded}`);
  return file.startsWith(`${root}${path.sep}`) ? file : undefined;
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendStatus(res, 405);
  const file = fileFor(req.url ?? '/');
  const fh: FileHandle | undefined = file ? await open(file, 'r').catch(() => undefined) : undefined;
  if (!fh) return sendStatus(res, 404);
  let streaming = false;
  try {
    const info = await fh.stat();
    if (!info.isFile()) return sendStatus(res, 404);
    res.writeHead(200, { 'Content-Type': 'application/zip', 'Content-Length': info.size });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    streaming = true; // the stream closes the handle
    await pipeline(fh.createReadStream(), res).catch(() => res.destroy());
  } finally {
    if (!streaming) await fh.close();
  }
}

const server = http.createServer((req, res) => {
  handle(req, res).catch(() => {
    if (res.headersSent) res.destroy();
    else sendStatus(res, 500);
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`listening http://127.0.0.1:${port}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
