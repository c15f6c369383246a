import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { type Logger, pino } from 'pino';
import { RegistryError } from '../core/errors.js';
import type { ServeMode } from '../registry/index-sync.js';
import type { Registry } from '../registry/registry.js';
import { handleWeb } from '../web/web-routes.js';
import { AccessControl, type AccessDecision } from './access-control.js';
import { handleAdminSync } from './admin-routes.js';
import { handleArchive } from './archive-route.js';
import { handleInfoRefs, handleUploadPack, refusePush } from './git-smart-http.js';
import { errorResponse, HttpError, methodNotAllowed, notFound, sendJson } from './http-error.js';
import { handleHealth, handleModule, handleRoot } from './info-routes.js';
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from './limits.js';
import { routeLabel } from './metrics.js';
import { createServerContext, type ServeBehaviour, type ServerContext } from './server-context.js';
import { webContextFor } from './web-ui.js';

export interface ServeOptions extends Partial<Omit<ServeBehaviour, 'limits'>> {
  host: string;
  port: number;
  /** Access and error log; defaults to a pino logger on stdout, `false` for none. */
  logger?: Logger | false;
  /** Each limit not given keeps its default (limits.ts). */
  limits?: Partial<ServerLimits>;
  /** Who may read; default: anyone. */
  access?: AccessControl;
  /** PEM certificate chain and key: serve HTTPS instead of HTTP. */
  tls?: TlsFiles;
  /** The URL clients use when it is not this server's own (behind a reverse proxy). */
  baseUrl?: string;
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

export interface RunningServer {
  /** This server's own address. */
  url: string;
  /** What clients should use: the base URL if one is configured, else `url`. */
  publicUrl: string;
  port: number;
  mode: ServeMode;
  /** Swaps in a renewed certificate; connections already open keep theirs. */
  reloadTls(tls: TlsFiles): void;
  /** Replaces the admin token (SHA-256 hex); the admin endpoints need one set at start. */
  setAdminToken(sha256: string | undefined): void;
  close(): Promise<void>;
}

const READ_METHODS = ['GET', 'HEAD'] as const;

/** Serves the registry to `moon` (PROTOCOL.md): the index over smart HTTP, archives, and info. */
export async function startServer(registry: Registry, options: ServeOptions): Promise<RunningServer> {
  const logger =
    options.logger === false ? undefined : (options.logger ?? pino({ name: 'moonbit-registry' }));
  const limits: ServerLimits = { ...DEFAULT_SERVER_LIMITS, ...options.limits };
  const ctx = await createServerContext(
    registry,
    {
      proxy: options.proxy ?? false,
      syncIntervalMs: options.syncIntervalMs,
      adminTokenSha256: options.adminTokenSha256,
      access: options.access ?? new AccessControl({ mode: 'open', allow: [], tokens: [] }, []),
      negativeTtlMs: options.negativeTtlMs ?? 30_000,
      ...(options.breaker ? { breaker: options.breaker } : {}),
      limits,
    },
    logger,
  );
  const bytesCounted = new WeakMap<Socket, number>();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const access = ctx.access.check(req);
    // (The socket is kept here: the request lets go of it once the response is done.)
    const socket = req.socket;
    res.on('close', () => {
      const path = (req.url ?? '/').split('?')[0] as string;
      // Responses on one connection end in order (even pipelined ones): what the socket wrote
      // since the last one ended is this one's.
      const counted = bytesCounted.get(socket) ?? 0;
      bytesCounted.set(socket, socket.bytesWritten);
      ctx.metrics.request(
        routeLabel(path),
        req.method ?? 'GET',
        res.writableFinished ? String(res.statusCode) : 'aborted',
        (performance.now() - started) / 1000,
        socket.bytesWritten - counted,
      );
      logger?.info(
        {
          method: req.method,
          url: req.url,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
          client: access.client,
          ...(access.user ? { user: access.user } : {}),
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    route(ctx, req, res, access).catch((error: unknown) => sendError(ctx, res, error));
  };
  const server: Server | TlsServer = options.tls
    ? createTlsServer(
        {
          ...httpOptions(limits),
          cert: options.tls.cert,
          key: options.tls.key,
          // A client that connects and never finishes the handshake is cut like a slow one.
          handshakeTimeout: limits.headersTimeoutMs,
        },
        handler,
      )
    : createServer(httpOptions(limits), handler);
  // Every socket, including ones still in a TLS handshake that the HTTP layer does not track
  // yet, so that shutdown can end them all when its time is up.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // Without this, Node destroys the socket of a CONNECT request and the client gets no answer.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => {});
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, POST\r\nConnection: close\r\n\r\n');
  });
  // A socket that neither sends nor reads this long is destroyed (no 'timeout' handler), which
  // also ends a git held by a client that stopped reading.
  server.setTimeout(limits.idleTimeoutMs);
  try {
    await listen(server, options.host, options.port);
  } catch (error) {
    await ctx.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `${options.tls ? 'https' : 'http'}://${host}:${port}`;
  const publicUrl = options.baseUrl ?? url;
  ctx.info.publicUrl = publicUrl;
  ctx.started(url);
  return {
    url,
    publicUrl,
    port,
    mode: ctx.mode,
    setAdminToken: (sha256) => {
      ctx.adminTokenSha256 = sha256;
    },
    reloadTls: (tls) => {
      if (!('setSecureContext' in server)) throw new Error('this server does not serve HTTPS');
      server.setSecureContext({ cert: tls.cert, key: tls.key });
    },
    close: async () => {
      await closeServer(server, sockets, limits.shutdownTimeoutMs);
      await ctx.close();
    },
  };
}

async function route(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  access: AccessDecision,
): Promise<void> {
  const method = req.method ?? 'GET';
  const target = req.url ?? '/';
  // Route on the raw, still-encoded path: WHATWG URL parsing would resolve `..` and `%2e%2e`
  // before we could refuse them.
  if (!target.startsWith('/')) throw new HttpError(400, 'bad request target');
  const queryAt = target.indexOf('?');
  const path = queryAt < 0 ? target : target.slice(0, queryAt);
  const query = new URLSearchParams(queryAt < 0 ? '' : target.slice(queryAt + 1));
  // These URLs answer browsers with HTML (web/) and others with JSON, errors included: a cache
  // in front must keep the two apart.
  if (path === '/' || path === '/status' || (path.startsWith('/user/') && !path.endsWith('.zip'))) {
    res.setHeader('Vary', 'Accept');
  }

  // Load balancers may always ask whether the server is up; only readers see the details.
  if (path === '/health') {
    if (!(READ_METHODS as readonly string[]).includes(method)) throw methodNotAllowed(READ_METHODS);
    return handleHealth(ctx.info, res, access.addressAllowed && access.authenticated);
  }
  if (!access.addressAllowed) throw new HttpError(403, 'this registry does not serve your address');
  // The admin endpoints check their own token.
  if (!access.authenticated && path !== '/admin/sync') {
    throw new HttpError(401, 'credentials required', {
      'WWW-Authenticate': `Basic realm="${headerSafe(ctx.registry.config.registry.name)}", charset="UTF-8"`,
    });
  }

  if (path === '/git/index/git-receive-pack') refusePush();
  if (needsIndex(path)) await waitForFirstIndex(ctx, res);
  if (path === '/git/index/git-upload-pack') {
    if (method !== 'POST') throw methodNotAllowed(['POST']);
    return handleUploadPack(gitContext(ctx), req, res);
  }
  if (path === '/git/index/info/refs') {
    if (method !== 'GET') throw methodNotAllowed(['GET']);
    return handleInfoRefs(gitContext(ctx), req, res, query.get('service'));
  }
  // Everything else under /git is the dumb protocol or a repository file: never served.
  if (path === '/git' || path.startsWith('/git/')) throw notFound();
  if (path === '/admin/sync') {
    if (method !== 'POST') throw methodNotAllowed(['POST']);
    return handleAdminSync({ tokenSha256: ctx.adminTokenSha256, sync: ctx.sync }, req, res);
  }

  if (path === '/metrics') {
    if (!(READ_METHODS as readonly string[]).includes(method)) throw methodNotAllowed(READ_METHODS);
    const text = await ctx.metrics.text();
    res.writeHead(200, { 'Content-Type': ctx.metrics.contentType, 'Cache-Control': 'no-store' });
    res.end(method === 'HEAD' ? undefined : text);
    return;
  }

  if (await handleWeb(webContextFor(ctx), req, res, path, query)) return;
  if (path === '/status') {
    if (!(READ_METHODS as readonly string[]).includes(method)) throw methodNotAllowed(READ_METHODS);
    return sendJson(res, 200, await ctx.info.status());
  }
  const readRoute = path === '/' || path.startsWith('/user/') || isAbsentResource(path);
  if (!readRoute) throw notFound();
  if (!(READ_METHODS as readonly string[]).includes(method)) throw methodNotAllowed(READ_METHODS);

  if (path === '/') return handleRoot(ctx.info, res);
  if (isAbsentResource(path)) throw notFound('not provided by this registry');
  const rest = path.slice('/user/'.length);
  if (rest.endsWith('.zip')) {
    return handleArchive(
      {
        store: ctx.registry.store,
        index: ctx.index,
        pullThrough: ctx.pullThrough,
        onArchive: (result) => {
          ctx.metrics.archive(result);
          if (result === 'hit' || result === 'miss') ctx.downloads.record();
        },
      },
      req,
      res,
      rest,
    );
  }
  return handleModule(ctx.info, res, rest);
}

/** Routes whose answer comes from the served index: the index itself, archives, module info. */
function needsIndex(path: string): boolean {
  return (
    path === '/git/index/info/refs' || path === '/git/index/git-upload-pack' || path.startsWith('/user/')
  );
}

/**
 * A fresh pull-through server has no index yet: a clone now would get an empty one. Wait for the
 * first (bounded by first_index_wait), then tell the client when to try again.
 */
async function waitForFirstIndex(ctx: ServerContext, res: ServerResponse): Promise<void> {
  if (ctx.readiness.ready) return;
  const left = new AbortController();
  const onClose = () => left.abort();
  res.once('close', onClose);
  try {
    if (await ctx.readiness.wait(ctx.limits.firstIndexWaitMs, left.signal)) return;
  } finally {
    res.off('close', onClose);
  }
  const next = ctx.sync?.status().next_run;
  const seconds = next ? Math.ceil((Date.parse(next) - Date.now()) / 1000) : FIRST_INDEX_RETRY_S;
  throw new HttpError(503, 'this registry is fetching its first index; try again shortly', {
    'Retry-After': String(Math.min(60, Math.max(1, seconds))),
  });
}

/** Retry-After while the first sync is still running (its end is unknown). */
const FIRST_INDEX_RETRY_S = 5;

/** Symbols and prebuilt wasm are optional for `moon`: a 404 means "none" (PROTOCOL.md 5). */
function isAbsentResource(path: string): boolean {
  return path === '/symbols.zip' || path.startsWith('/assets/');
}

function gitContext(ctx: ServerContext) {
  return {
    gitDir: ctx.gitDir,
    logger: ctx.logger,
    limiter: ctx.gitLimiter,
    maxRequestBody: ctx.limits.maxRequestBody,
  };
}

/** Node's own limits against slow and oversized requests (it answers 408, 431 or 400 itself). */
function httpOptions(limits: ServerLimits) {
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return {
    maxHeaderSize: limits.maxHeaderSize,
    headersTimeout,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks both timeouts only this often (default 30 s): check often enough to hold them.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 2))),
  };
}

function sendError(ctx: ServerContext, res: ServerResponse, error: unknown): void {
  const response = errorResponse(error);
  if (response.internal) ctx.logger?.error({ err: error }, 'request failed');
  // The client is gone (it left while waiting, or a timeout cut it): nobody to answer.
  if (res.destroyed) return;
  if (res.headersSent) {
    // Part of a body is out: only a cut connection tells the client it is incomplete.
    res.destroy();
    return;
  }
  try {
    sendJson(res, response.status, { error: response.message }, response.headers);
  } catch (failure) {
    // An answer Node refuses to send (a header it finds invalid) must not take the server down.
    ctx.logger?.error({ err: failure }, 'could not send an error response');
    res.destroy();
  }
}

/** Printable ASCII without quotes or backslashes: what a quoted header parameter may hold. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]|["\\]/g, '').trim() || 'moonbit-registry';
}

function listen(server: Server | TlsServer, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(listenError(error, host, port)));
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The usual reasons a port cannot be taken, said with what to do about them. */
function listenError(error: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (error.code === 'EADDRINUSE') {
    return new RegistryError('IO', `cannot listen on ${where}: another process uses that port`, {
      hint: 'stop it, or pick another port with --port or [server] port',
    });
  }
  if (error.code === 'EACCES') {
    return new RegistryError('IO', `cannot listen on ${where}: permission denied`, {
      hint: 'ports below 1024 need privileges: use a higher port behind a reverse proxy',
    });
  }
  if (error.code === 'EADDRNOTAVAIL') {
    return new RegistryError('IO', `cannot listen on ${where}: no such address on this machine`, {
      hint: "use 127.0.0.1, 0.0.0.0 (every interface) or one of this machine's addresses",
    });
  }
  return error;
}

/** Stops accepting, lets requests in flight finish for `graceMs`, then cuts what is left. */
function closeServer(server: Server | TlsServer, sockets: Set<Socket>, graceMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const force = setTimeout(() => {
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
    }, graceMs);
    force.unref();
    // A keep-alive connection whose response finishes after close() would otherwise stay open
    // until its keep-alive timeout: close each one as soon as it is idle.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    sweep.unref();
    server.close((error) => {
      clearTimeout(force);
      clearInterval(sweep);
      if (error) reject(error);
      else resolve();
    });
    server.closeIdleConnections();
  });
}
