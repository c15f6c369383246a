/**
 * A tiny HTTP proxy that records what a real client exchanges with a server, so that the
 * exchange can be replayed later without the client (bench/http-replay.ts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PktLineMeter } from './pkt-line-meter.js';

/** Request headers that can change the server's answer to a git client; the rest is not kept. */
const KEPT_HEADERS = ['git-protocol', 'content-type', 'content-encoding', 'accept'] as const;

/** One request and what the server answered. */
export interface Exchange {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: Record<string, string>;
  /** The request body as sent (still gzipped when the client gzipped it). */
  body: Buffer;
  status: number;
  /** Bytes of the response body, as sent by the server. */
  responseBytes: number;
  /** Its content without pkt-line framing (bench/pkt-line-meter.ts); undefined if not pkt-lines. */
  contentBytes: number | undefined;
}

export interface RecordingProxy {
  /** The proxy's base URL: the server's URL with this host and port. */
  url: string;
  /** Returns the exchanges recorded since the last call, in the order they finished. */
  take(): Exchange[];
  stop(): Promise<void>;
}

/** Forwards every request to `target` (an http://host:port URL) and records it. */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const upstream = new URL(target);
  let recorded: Exchange[] = [];
  const server = http.createServer((req, res) => {
    forward(upstream, req, res).then(
      (exchange) => recorded.push(exchange),
      (error: unknown) => {
        res.destroy();
        // The client sees a broken exchange; the caller learns it from the client's failure.
        process.stderr.write(`recording proxy: ${error instanceof Error ? error.message : String(error)}\n`);
      },
    );
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    take: () => {
      const taken = recorded;
      recorded = [];
      return taken;
    },
    stop: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function keptHeaders(req: http.IncomingMessage): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') kept[name] = value;
  }
  return kept;
}

/** One request: the whole body first, then the answer streamed back while it is counted. */
async function forward(
  upstream: URL,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<Exchange> {
  const body = await readAll(req);
  const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) };
  delete headers['transfer-encoding'];
  delete headers.connection;
  const answer = await new Promise<http.IncomingMessage>((done, fail) => {
    const outgoing = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      done,
    );
    outgoing.once('error', fail);
    outgoing.end(body);
  });
  res.writeHead(answer.statusCode ?? 502, answer.headers);
  let responseBytes = 0;
  const meter = new PktLineMeter();
  answer.on('data', (chunk: Buffer) => {
    responseBytes += chunk.length;
    meter.push(chunk);
  });
  answer.pipe(res);
  await new Promise<void>((done, fail) => {
    answer.once('end', done);
    answer.once('error', fail);
  });
  return {
    method: req.method ?? 'GET',
    path: req.url ?? '/',
    headers: keptHeaders(req),
    body,
    status: answer.statusCode ?? 0,
    responseBytes,
    contentBytes: meter.result(),
  };
}
