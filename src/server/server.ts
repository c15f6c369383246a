import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type Logger, pino } from 'pino';
import type { ServeMode } from '../registry/index-sync.js';
import type { Registry } from '../registry/registry.js';
import { handleAdminSync } from './admin-routes.js';
import { handleArchive } from './archive-route.js';
import { handleInfoRefs, handleUploadPack, refusePush } from './git-smart-http.js';
import { errorResponse, HttpError, methodNotAllowed, notFound, sendJson } from './http-error.js';
import { handleHealth, handleModule, handleRoot } from './info-routes.js';
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from './limits.js';
import { createServerContext, type ServeBehaviour, type ServerContext } from './server-context.js';

export interface ServeOptions extends Partial<Omit<ServeBehaviour, 'limits'>> {
  host: string;
  port: number;
  /** Access and error log; defaults to a pino logger on stdout, `false` for none. */
  logger?: Logger | false;
  /** Each limit not given keeps its default (limits.ts). */
  limits?: Partial<ServerLimits>;
}

export interface RunningServer {
  url: string;
  port: number;
  mode: ServeMode;
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
      adminToken: options.adminToken,
      negativeTtlMs: options.negativeTtlMs ?? 30_000,
      ...(options.breaker ? { breaker: options.breaker } : {}),
      limits,
    },
    logger,
  );
  const server = createServer(httpOptions(limits), (req, res) => {
    const started = performance.now();
    res.on('close', () => {
      logger?.info(
        {
          method: req.method,
          url: req.url,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    route(ctx, req, res).catch((error: unknown) => sendError(ctx, res, error));
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
  return {
    url: `http://${host}:${port}`,
    port,
    mode: ctx.mode,
    close: async () => {
      await closeServer(server);
      await ctx.close();
    },
  };
}

async function route(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method ?? 'GET';
  const target = req.url ?? '/';
  // Route on the raw, still-encoded path: WHATWG URL parsing would resolve `..` and `%2e%2e`
  // before we could refuse them.
  if (!target.startsWith('/')) throw new HttpError(400, 'bad request target');
  const queryAt = target.indexOf('?');
  const path = queryAt < 0 ? target : target.slice(0, queryAt);
  const query = new URLSearchParams(queryAt < 0 ? '' : target.slice(queryAt + 1));

  if (path === '/git/index/git-receive-pack') refusePush();
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
    return handleAdminSync({ token: ctx.adminToken, sync: ctx.sync }, req, res);
  }

  const readRoute = path === '/' || path === '/health' || path.startsWith('/user/') || isAbsentResource(path);
  if (!readRoute) throw notFound();
  if (!(READ_METHODS as readonly string[]).includes(method)) throw methodNotAllowed(READ_METHODS);

  if (path === '/health') return handleHealth(ctx.info, res);
  if (path === '/') return handleRoot(ctx.info, res);
  if (isAbsentResource(path)) throw notFound('not provided by this registry');
  const rest = path.slice('/user/'.length);
  if (rest.endsWith('.zip')) {
    return handleArchive(
      { store: ctx.registry.store, index: ctx.index, pullThrough: ctx.pullThrough },
      req,
      res,
      rest,
    );
  }
  return handleModule(ctx.info, res, rest);
}

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
  sendJson(res, response.status, { error: response.message }, response.headers);
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops accepting, lets requests in flight finish briefly, then cuts what is left. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    const force = setTimeout(() => server.closeAllConnections(), 2000);
    force.unref();
    server.close((error) => {
      clearTimeout(force);
      if (error) reject(error);
      else resolve();
    });
    server.closeIdleConnections();
  });
}
