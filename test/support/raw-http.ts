/**
 * HTTP/1.1 over a bare socket, for requests that fetch or node:http would normalise or refuse
 * to send: `..` and backslashes in the target, NUL bytes, absolute-form targets, invalid
 * headers, trickled bytes.
 */
import { connect, type Socket } from 'node:net';

export interface RawReply {
  /** 0 when the connection ended without a status line. */
  status: number;
  /** Lower-case names; the last value wins. */
  headers: Record<string, string>;
  /** The body, de-chunked when it came chunked. */
  body: Buffer;
  /** Everything the server sent. */
  bytes: Buffer;
  /** How the exchange ended: a complete response, the server closing or resetting, our timeout. */
  end: 'response' | 'closed' | 'reset' | 'timeout';
}

export interface RawRequest {
  method: string;
  target: string;
  headers?: Array<[string, string]>;
  body?: Buffer | string;
}

/**
 * A request as bytes: `Host` and `Connection: close` unless given, `Content-Length` when there
 * is a body and no length or chunking is given. Header values go out exactly as written.
 */
export function formatRequest(request: RawRequest): Buffer {
  const headers = [...(request.headers ?? [])];
  const has = (name: string) => headers.some(([key]) => key.toLowerCase() === name);
  if (!has('host')) headers.unshift(['Host', '127.0.0.1']);
  if (!has('connection')) headers.push(['Connection', 'close']);
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  if (body && !has('content-length') && !has('transfer-encoding')) {
    headers.push(['Content-Length', String(body.length)]);
  }
  const head = `${request.method} ${request.target} HTTP/1.1\r\n${headers
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body ?? Buffer.alloc(0)]);
}

/** Sends `data` as is and reads one response (or whatever came before the connection ended). */
export function exchange(port: number, data: Buffer | string, timeoutMs = 10_000): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let reset = false;
    let finished = false;
    const finish = (end: RawReply['end']) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseReply(Buffer.concat(chunks), end));
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('connect', () => {
      // The server may answer and close before reading all of it: that is not our error.
      socket.write(data, () => {});
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (isComplete(Buffer.concat(chunks))) finish('response');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') reset = true;
    });
    socket.on('close', () => finish(reset ? 'reset' : 'closed'));
  });
}

export interface TrickleOptions {
  /** Sent at once on connecting. */
  prefix?: Buffer | string;
  /** Then sent one byte every `intervalMs`. */
  data?: Buffer | string;
  intervalMs: number;
  /** Gives up (end: 'timeout') after this long. */
  timeoutMs: number;
}

/**
 * A slow client: sends `prefix`, then `data` byte by byte, reading until the server closes the
 * connection. `sent` counts the bytes of `data` that went out, `ms` the time to the end.
 */
export function trickle(
  port: number,
  options: TrickleOptions,
): Promise<RawReply & { sent: number; ms: number }> {
  const data = Buffer.from(options.data ?? '');
  const started = Date.now();
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let sent = 0;
    let reset = false;
    socket.on('connect', () => {
      if (options.prefix !== undefined) socket.write(options.prefix, () => {});
    });
    const tick = setInterval(() => {
      if (sent < data.length && socket.writable) socket.write(data.subarray(sent, ++sent), () => {});
    }, options.intervalMs);
    const finish = (end: RawReply['end']) => {
      clearInterval(tick);
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseReply(Buffer.concat(chunks), end), sent, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {
      reset = true;
    });
    socket.on('close', () => finish(reset ? 'reset' : 'closed'));
  });
}

function splitHead(bytes: Buffer): { head: string; rest: Buffer } | undefined {
  const at = bytes.indexOf('\r\n\r\n');
  if (at < 0) return undefined;
  return { head: bytes.subarray(0, at).toString('latin1'), rest: bytes.subarray(at + 4) };
}

function headerMap(head: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** A complete response with a length or chunked body (HEAD and 1xx/204/304 are not used here). */
function isComplete(bytes: Buffer): boolean {
  const parts = splitHead(bytes);
  if (!parts) return false;
  const headers = headerMap(parts.head);
  if (headers['content-length'] !== undefined) return parts.rest.length >= Number(headers['content-length']);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) return dechunk(parts.rest).complete;
  return false;
}

function dechunk(rest: Buffer): { body: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = rest.indexOf('\r\n', at);
    if (lineEnd < 0) return { body: Buffer.concat(parts), complete: false };
    const size = Number.parseInt(rest.toString('latin1', at, lineEnd), 16);
    if (Number.isNaN(size)) return { body: Buffer.concat(parts), complete: false };
    if (size === 0) return { body: Buffer.concat(parts), complete: true };
    parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

function parseReply(bytes: Buffer, end: RawReply['end']): RawReply {
  const parts = splitHead(bytes);
  const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(bytes.toString('latin1', 0, 64));
  const status = statusLine ? Number(statusLine[1]) : 0;
  if (!parts) return { status, headers: {}, body: Buffer.alloc(0), bytes, end };
  const headers = headerMap(parts.head);
  const body = /chunked/i.test(headers['transfer-encoding'] ?? '') ? dechunk(parts.rest).body : parts.rest;
  return { status, headers, body, bytes, end };
}
