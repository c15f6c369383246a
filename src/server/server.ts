import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { type Logger, pino } from 'pino';
import { RegistryError } from '../core/errors.js';
import type { ServeMode } from '../registry/index-sync.js';
import type { Registry } from '../registry/registry.js';
import { AccessControl } from './access-control.js';
import { errorResponse, sendJson } from './http-error.js';
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from './limits.js';
import { routeLabel } from './metrics.js';
import type { ProcessLimiter } from './process-limiter.js';
import { route } from './routes.js';
import { createServerContext, type ServeBehaviour, type ServerContext } from './server-context.js';
import type { UploadPackAnswers } from './upload-pack-answers.js';

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
  /** The line every git process waits in (tests hold its slots to fill it). */
  gitLimiter: ProcessLimiter;
  /** The upload-pack answers and their cache (tests wait for its warm-ups). */
  answers: UploadPackAnswers;
  close(): Promise<void>;
}

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
    gitLimiter: ctx.gitLimiter,
    answers: ctx.answers,
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
