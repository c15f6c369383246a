/**
 * A stand-in for mooncakes.io on 127.0.0.1: the index over smart HTTP (git itself does the pack
 * work through `git http-backend`), archives under /user/, plus auth, latency and faults that
 * tests switch at runtime.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { archiveMarker, type Fixture, makeArchive } from './fixture.js';
import { isolatedGitEnv } from './git.js';

/**
 * http500: status 500. wrongBytes: a valid zip, but not the one the index describes.
 * truncate: Content-Length promises more than is sent, then the connection closes.
 * reset: the socket is reset before any answer. hang: no answer at all.
 * stall: the right archive, but only the first half at once; the rest after `stallMs` (or at
 * releaseStalls()), each stall logged in `stalls`. notFound: status 404 for a listed archive.
 */
export type Fault = 'http500' | 'wrongBytes' | 'truncate' | 'reset' | 'hang' | 'stall' | 'notFound';
export type GitFault = 'http500' | 'reset' | 'hang';

export type UpstreamAuth =
  | { type: 'bearer'; token: string }
  | { type: 'basic'; username: string; password: string };

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Set when the response finished; undefined for requests that got no answer. */
  status?: number;
}

/** One archive answer held back by the `stall` fault; times are performance.now(). */
export interface StallRecord {
  key: string;
  /** Bytes sent at once (the first half). */
  sentFirst: number;
  total: number;
  firstHalfAt: number;
  /** Set just before the rest is written; undefined while the stall lasts. */
  resumedAt?: number;
}

export interface FakeUpstreamOptions {
  fixture: Fixture;
  latencyMs?: number;
  auth?: UpstreamAuth;
  /** Served at /symbols.zip with an ETag; absent means 404. */
  symbols?: Buffer;
  port?: number;
}

const INDEX_PREFIX = '/git/index';
/** How long the `truncate` fault waits between the half it sends and closing the connection. */
const TRUNCATE_CLOSE_DELAY_MS = 50;

export class FakeUpstream {
  fixture: Fixture;
  latencyMs: number;
  auth: UpstreamAuth | undefined;
  symbols: Buffer | undefined;
  /** Keyed by `module@version`; the key `*` applies to every archive. */
  readonly faults = new Map<string, Fault>();
  /** Applies to every request under /git/index while set. */
  gitFault: GitFault | undefined;
  /** How long the `stall` fault holds the second half of an archive back. */
  stallMs = 1500;
  readonly stalls: StallRecord[] = [];
  readonly requests: RecordedRequest[] = [];
  archiveRequests = 0;
  /** `module@version` -> number of archive requests (faulted ones included). */
  readonly archiveHits = new Map<string, number>();
  /**
   * Prebuilt wasm by decoded path below /assets/ (`owner/tool@1.0.0/cli/cli.wasm`); each one's
   * `.sha256` (`<hex>  <file>`) is made from it unless assetSha256 holds other text for it.
   */
  readonly assets = new Map<string, Buffer>();
  /** `.sha256` text by the wasm's path, served instead of the true one. */
  readonly assetSha256 = new Map<string, string>();
  /** Decoded path below /assets/ -> number of requests (`.sha256` ones under their own path). */
  readonly assetHits = new Map<string, number>();

  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly children = new Set<ChildProcessWithoutNullStreams>();
  private readonly stallWaiters = new Set<() => void>();
  private isDown = false;
  private port = 0;

  private constructor(opts: FakeUpstreamOptions) {
    this.fixture = opts.fixture;
    this.latencyMs = opts.latencyMs ?? 0;
    this.auth = opts.auth;
    this.symbols = opts.symbols;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => failResponse(res, error));
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(opts: FakeUpstreamOptions): Promise<FakeUpstream> {
    const upstream = new FakeUpstream(opts);
    await upstream.listen(opts.port ?? 0);
    return upstream;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get indexUrl(): string {
    return `${this.url}${INDEX_PREFIX}`;
  }

  /** Every request gets 503 until up(). */
  down(): void {
    this.isDown = true;
  }

  up(): void {
    this.isDown = false;
  }

  /** Stops listening and drops every connection: clients see "connection refused". */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropConnections();
    await closed;
  }

  /** Listens again on the same port after close(). */
  async restart(): Promise<void> {
    if (!this.server.listening) await this.listen(this.port);
  }

  async stop(): Promise<void> {
    await this.close();
  }

  /** Ends every stall in progress now: the held halves are sent. */
  releaseStalls(): void {
    for (const release of [...this.stallWaiters]) release();
  }

  clearRecords(): void {
    this.stalls.length = 0;
    this.requests.length = 0;
    this.archiveRequests = 0;
    this.archiveHits.clear();
    this.assetHits.clear();
  }

  /** Requests that carried this exact Authorization header value. */
  requestsWithAuthorization(value: string): RecordedRequest[] {
    return this.requests.filter((r) => r.headers.authorization === value);
  }

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  private dropConnections(): void {
    this.releaseStalls();
    for (const child of this.children) child.kill('SIGKILL');
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
    };
    this.requests.push(recorded);
    res.on('finish', () => {
      recorded.status = res.statusCode;
    });
    if (this.latencyMs > 0) await delay(this.latencyMs);
    if (this.isDown) sendText(res, 503, 'upstream is down\n');
    else if (!this.authorized(req)) this.challenge(res);
    else this.route(req, res, recorded.url);
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse, url: string): void {
    const [rawPath = '/', query = ''] = url.split('?', 2);
    if (rawPath === INDEX_PREFIX || rawPath.startsWith(`${INDEX_PREFIX}/`)) {
      this.serveGit(req, res, rawPath.slice(INDEX_PREFIX.length), query);
    } else if (rawPath.startsWith('/user/')) {
      this.serveArchive(req, res, rawPath.slice('/user/'.length));
    } else if (rawPath === '/symbols.zip') {
      this.serveSymbols(req, res);
    } else if (rawPath.startsWith('/assets/')) {
      this.serveAsset(req, res, rawPath.slice('/assets/'.length));
    } else {
      sendText(res, 404, 'not found\n');
    }
  }

  private expectedAuthorization(): string | undefined {
    const auth = this.auth;
    if (!auth) return undefined;
    if (auth.type === 'bearer') return `Bearer ${auth.token}`;
    return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  }

  private authorized(req: http.IncomingMessage): boolean {
    const expected = this.expectedAuthorization();
    return expected === undefined || req.headers.authorization === expected;
  }

  private challenge(res: http.ServerResponse): void {
    const scheme = this.auth?.type === 'basic' ? 'Basic' : 'Bearer';
    res.setHeader('WWW-Authenticate', `${scheme} realm="fake-upstream"`);
    sendText(res, 401, 'unauthorized\n');
  }

  // -------------------------------------------------------------------------------------------
  // Git

  private serveGit(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    subPath: string,
    query: string,
  ): void {
    if (this.gitFault) {
      applyGitFault(this.gitFault, req, res);
      return;
    }
    // The index is read-only: never let a push reach git.
    if (subPath.endsWith('/git-receive-pack') || /(^|&)service=git-receive-pack(&|$)/.test(query)) {
      sendText(res, 403, 'pushing is not allowed\n');
      return;
    }
    const gitDir = this.fixture.gitDir;
    const env: NodeJS.ProcessEnv = {
      GIT_PROJECT_ROOT: path.dirname(gitDir),
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: `/${path.basename(gitDir)}${subPath}`,
      REQUEST_METHOD: req.method ?? 'GET',
      QUERY_STRING: query,
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
    };
    const contentLength = req.headers['content-length'];
    if (contentLength) env.CONTENT_LENGTH = contentLength;
    const encoding = req.headers['content-encoding'];
    if (encoding) env.HTTP_CONTENT_ENCODING = encoding;
    const protocol = req.headers['git-protocol'];
    if (typeof protocol === 'string') env.GIT_PROTOCOL = protocol;
    this.runCgi(env, req, res);
  }

  private runCgi(env: NodeJS.ProcessEnv, req: http.IncomingMessage, res: http.ServerResponse): void {
    const child = spawn('git', ['http-backend'], {
      env: isolatedGitEnv(env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.children.add(child);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    child.stdin.on('error', () => {}); // git may stop reading early; its exit status tells
    req.pipe(child.stdin);
    res.on('close', () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    pipeCgiResponse(child, res, () => stderr);
    child.on('close', () => this.children.delete(child));
  }

  // -------------------------------------------------------------------------------------------
  // Archives

  private serveArchive(req: http.IncomingMessage, res: http.ServerResponse, rest: string): void {
    const ref = parseArchiveRequest(rest);
    if (!ref) {
      sendText(res, 404, 'not found\n');
      return;
    }
    const key = `${ref.module}@${ref.version}`;
    this.archiveRequests++;
    this.archiveHits.set(key, (this.archiveHits.get(key) ?? 0) + 1);
    const fault = this.faults.get(key) ?? this.faults.get('*');
    const body = this.fixture.archiveFor(ref.module, ref.version);
    if (fault) this.applyArchiveFault(fault, ref.module, ref.version, body, req, res);
    else if (body) sendZip(req, res, body);
    else sendText(res, 404, 'not found\n');
  }

  private applyArchiveFault(
    fault: Fault,
    module: string,
    version: string,
    body: Buffer | undefined,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    switch (fault) {
      case 'http500':
        sendText(res, 500, 'internal server error\n');
        return;
      case 'wrongBytes':
        sendZip(req, res, makeArchive(module, version, archiveMarker(`${this.fixture.flavor}:wrong-bytes`)));
        return;
      case 'truncate': {
        const full = body ?? makeArchive(module, version, archiveMarker(this.fixture.flavor));
        res.writeHead(200, { 'Content-Type': 'application/zip', 'Content-Length': full.length });
        // Half the bytes, then close: the client sees a body shorter than promised. The close
        // waits a little: sent together, a client may report the close before the bytes, and
        // then it never had a part of the body (a different fault: nothing, then a reset).
        res.write(full.subarray(0, Math.floor(full.length / 2)), () => {
          setTimeout(() => res.destroy(), TRUNCATE_CLOSE_DELAY_MS);
        });
        return;
      }
      case 'reset':
        req.socket.resetAndDestroy();
        return;
      case 'hang':
        return; // the socket stays open until the client gives up or close()
      case 'stall':
        if (body) void this.stall(`${module}@${version}`, body, req, res).catch(() => res.destroy());
        else sendText(res, 404, 'not found\n');
        return;
      case 'notFound':
        sendText(res, 404, 'not found\n');
        return;
    }
  }

  private async stall(
    key: string,
    body: Buffer,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> {
    res.writeHead(200, { 'Content-Type': 'application/zip', 'Content-Length': body.length });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const half = Math.floor(body.length / 2);
    const record: StallRecord = { key, sentFirst: half, total: body.length, firstHalfAt: 0 };
    this.stalls.push(record);
    await new Promise<void>((resolve) => res.write(body.subarray(0, half), () => resolve()));
    record.firstHalfAt = performance.now();
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stallWaiters.delete(done);
        res.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, this.stallMs);
      this.stallWaiters.add(done);
      res.once('close', done);
    });
    if (res.destroyed) return;
    record.resumedAt = performance.now();
    res.end(body.subarray(half));
  }

  private serveAsset(req: http.IncomingMessage, res: http.ServerResponse, rest: string): void {
    let path: string;
    try {
      path = decodeURIComponent(rest);
    } catch {
      sendText(res, 404, 'not found\n');
      return;
    }
    this.assetHits.set(path, (this.assetHits.get(path) ?? 0) + 1);
    if (path.endsWith('.wasm.sha256')) {
      const wasmPath = path.slice(0, -'.sha256'.length);
      const wasm = this.assets.get(wasmPath);
      const text =
        this.assetSha256.get(wasmPath) ??
        (wasm && `${createHash('sha256').update(wasm).digest('hex')}  ${wasmPath.split('/').at(-1)}\n`);
      if (text === undefined) sendText(res, 404, 'not found\n');
      else sendText(res, 200, text);
      return;
    }
    const wasm = this.assets.get(path);
    if (!wasm) {
      sendText(res, 404, 'not found\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/wasm', 'Content-Length': wasm.length });
    res.end(req.method === 'HEAD' ? undefined : wasm);
  }

  private serveSymbols(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!this.symbols) {
      sendText(res, 404, 'not found\n');
      return;
    }
    const etag = `"${createHash('sha256').update(this.symbols).digest('hex')}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { ETag: etag });
      res.end();
      return;
    }
    res.setHeader('ETag', etag);
    sendZip(req, res, this.symbols);
  }
}

export function startFakeUpstream(opts: FakeUpstreamOptions): Promise<FakeUpstream> {
  return FakeUpstream.start(opts);
}

/**
 * `<E>.zip` where E is the form-urlencoded `module/version` (`%2F`, `%2B`) or the same with
 * literal slashes. A literal `+` stays `+`: versions never hold spaces, old tools send it raw.
 */
export function parseArchiveRequest(rest: string): { module: string; version: string } | undefined {
  if (!rest.endsWith('.zip')) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest.slice(0, -'.zip'.length));
  } catch {
    return undefined;
  }
  const cut = decoded.lastIndexOf('/');
  const module = decoded.slice(0, cut);
  const version = decoded.slice(cut + 1);
  if (cut <= 0 || !module.includes('/') || !version) return undefined;
  return { module, version };
}

function applyGitFault(fault: GitFault, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (fault === 'http500') sendText(res, 500, 'internal server error\n');
  else if (fault === 'reset') req.socket.resetAndDestroy();
  // 'hang': no answer
}

/** Reads CGI headers (`Status:` included) from the child, then streams the rest as the body. */
export function pipeCgiResponse(
  child: ChildProcessWithoutNullStreams,
  res: http.ServerResponse,
  stderr: () => string,
) {
  let head = Buffer.alloc(0);
  let headersDone = false;
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const end = findHeaderEnd(head);
    if (!end) return;
    headersDone = true;
    child.stdout.off('data', onData);
    writeCgiHead(res, head.subarray(0, end.at).toString('latin1'));
    res.write(head.subarray(end.at + end.length));
    child.stdout.pipe(res);
  };
  child.stdout.on('data', onData);
  child.on('close', (code) => {
    if (!headersDone && !res.headersSent)
      sendText(res, 502, `git http-backend failed (${code}): ${stderr()}\n`);
  });
  child.on('error', (error) => failResponse(res, error));
}

function findHeaderEnd(buffer: Buffer): { at: number; length: number } | undefined {
  const crlf = buffer.indexOf('\r\n\r\n');
  const lf = buffer.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { at: crlf, length: 4 };
  if (lf >= 0) return { at: lf, length: 2 };
  return undefined;
}

function writeCgiHead(res: http.ServerResponse, text: string): void {
  let status = 200;
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 200;
    else res.setHeader(name, value);
  }
  res.writeHead(status);
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendZip(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  res.writeHead(200, { 'Content-Type': 'application/zip', 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function failResponse(res: http.ServerResponse, error: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendText(res, 500, `fake upstream error: ${error instanceof Error ? error.message : String(error)}\n`);
}
