import type { IncomingMessage, ServerResponse } from 'node:http';
import { handleWeb } from '../web/web-routes.js';
import type { AccessDecision } from './access-control.js';
import { handleAdminSync } from './admin-routes.js';
import { handleArchive } from './archive-route.js';
import { noteAssetDownload } from './asset-downloads.js';
import { handleAsset } from './asset-route.js';
import { handleInfoRefs, handleUploadPack, refusePush } from './git-smart-http.js';
import { handleMark, handlePublish } from './hosted-routes.js';
import { HttpError, methodNotAllowed, notFound, sendJson } from './http-error.js';
import { handleHealth, handleModule, handleRoot } from './info-routes.js';
import type { ServerContext } from './server-context.js';
import { handleSymbols } from './symbols-route.js';
import { webContextFor } from './web-ui.js';

const READ_METHODS = ['GET', 'HEAD'] as const;

/** One fixed path of the API. */
interface Route {
  methods: readonly string[];
  /**
   * read: the `[server.access]` rules decide (401 without a read token in credentials mode);
   * own: the handler checks a token of its own (admin, publish), so it works on an open
   * registry and needs no read token. The address rules apply to both.
   */
  guard: 'read' | 'own';
  /** The answer comes from the served index: a fresh proxy waits for its first one. */
  needsIndex?: boolean;
  handle(
    ctx: ServerContext,
    req: IncomingMessage,
    res: ServerResponse,
    query: URLSearchParams,
  ): Promise<void>;
}

/** The fixed paths, one place for who may call each and how (a Map: no prototype keys). */
const ROUTES = new Map<string, Route>([
  [
    '/git/index/git-upload-pack',
    {
      methods: ['POST'],
      guard: 'read',
      needsIndex: true,
      handle: (ctx, req, res) => handleUploadPack(gitContext(ctx), req, res),
    },
  ],
  [
    '/git/index/info/refs',
    {
      methods: ['GET'],
      guard: 'read',
      needsIndex: true,
      handle: (ctx, req, res, query) => handleInfoRefs(gitContext(ctx), req, res, query.get('service')),
    },
  ],
  [
    '/admin/sync',
    {
      methods: ['POST'],
      guard: 'own',
      handle: (ctx, req, res) =>
        handleAdminSync({ tokenSha256: ctx.adminTokenSha256, sync: ctx.sync }, req, res),
    },
  ],
  [
    '/api/v0/publish',
    { methods: ['POST'], guard: 'own', handle: (ctx, req, res) => handlePublish(ctx.publish, req, res) },
  ],
  ...(['yank', 'unyank', 'deprecate'] as const).map((kind): [string, Route] => [
    `/api/v0/${kind}`,
    { methods: ['POST'], guard: 'own', handle: (ctx, req, res) => handleMark(ctx.publish, kind, req, res) },
  ]),
  [
    '/symbols.zip',
    { methods: READ_METHODS, guard: 'read', handle: (ctx, req, res) => handleSymbols(ctx.symbols, req, res) },
  ],
  [
    '/metrics',
    {
      methods: READ_METHODS,
      guard: 'read',
      handle: async (ctx, req, res) => {
        const text = await ctx.metrics.text();
        res.writeHead(200, { 'Content-Type': ctx.metrics.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
    },
  ],
]);

/** Answers one request: the route table, then the web UI, then the read routes under `/user/`. */
export async function route(
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
  const fixed = ROUTES.get(path);
  if (!access.authenticated && fixed?.guard !== 'own') {
    throw new HttpError(401, 'credentials required', {
      'WWW-Authenticate': `Basic realm="${headerSafe(ctx.registry.config.registry.name)}", charset="UTF-8"`,
    });
  }
  if (fixed) {
    if (!fixed.methods.includes(method)) throw methodNotAllowed(fixed.methods);
    if (fixed.needsIndex) await waitForFirstIndex(ctx, res);
    return fixed.handle(ctx, req, res, query);
  }
  if (path === '/git/index/git-receive-pack') refusePush();
  // Everything else under /git is the dumb protocol or a repository file: never served.
  if (path === '/git' || path.startsWith('/git/')) throw notFound();

  if (path.startsWith('/user/') || path.startsWith('/assets/')) await waitForFirstIndex(ctx, res);
  noteAssetDownload(req, res, path, (module, version) => ctx.downloads.recordAsset(module, version));
  if (await handleWeb(webContextFor(ctx), req, res, path, query)) return;
  if (path === '/status') {
    if (!(READ_METHODS as readonly string[]).includes(method)) throw methodNotAllowed(READ_METHODS);
    return sendJson(res, 200, await ctx.info.status());
  }
  const readRoute = path === '/' || path.startsWith('/user/') || path.startsWith('/assets/');
  if (!readRoute) throw notFound();
  if (!(READ_METHODS as readonly string[]).includes(method)) throw methodNotAllowed(READ_METHODS);

  if (path === '/') return handleRoot(ctx.info, res);
  if (path.startsWith('/assets/')) {
    const { assets, index } = ctx;
    return handleAsset({ ...assets, index }, req, res, path.slice('/assets/'.length));
  }
  const rest = path.slice('/user/'.length);
  if (rest.endsWith('.zip')) {
    return handleArchive(
      {
        store: ctx.registry.store,
        index: ctx.index,
        pullThrough: ctx.pullThrough,
        redirect: ctx.registry.config.storage.redirect,
        onArchive: (result, archive) => {
          ctx.metrics.archive(result);
          if (result === 'hit' || result === 'miss') ctx.downloads.record(archive);
        },
      },
      req,
      res,
      rest,
    );
  }
  return handleModule(ctx.info, res, rest);
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

function gitContext(ctx: ServerContext) {
  return {
    answers: ctx.answers,
    maxRequestBody: ctx.limits.maxRequestBody,
    bodies: ctx.gitBodies,
  };
}

/** Printable ASCII without quotes or backslashes: what a quoted header parameter may hold. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]|["\\]/g, '').trim() || 'moonbit-registry';
}
