import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodePathSegments } from '../core/archive-url.js';
import { isValidModuleName } from '../core/module-name.js';
import { notFound } from '../server/http-error.js';
import { CatalogCache } from './catalog.js';
import { html, type SafeHtml } from './html.js';
import { page } from './layout.js';
import { listHref } from './links.js';
import { readListQuery, renderListPage } from './pages/list-page.js';
import { loadVersions, renderModulePage } from './pages/module-page.js';
import { renderStatusPage } from './pages/status-page.js';
import { sendStatic } from './static-assets.js';
import type { WebContext } from './web-context.js';

const catalogs = new WeakMap<WebContext, CatalogCache>();

/**
 * Pages may load only this server's own stylesheet and script: an escaping slip would still run
 * nothing, and no page can make the browser reach another host.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "style-src 'self'",
  "script-src 'self'",
  "img-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The web UI: browsers (GET/HEAD with `text/html` in Accept) get pages at `/`, `/user/<module>`
 * and `/status`; `/static/<name>` serves the stylesheet and script. Returns false when the
 * request is for the JSON routes (server/): `moon` and git never ask for HTML, so what they get
 * stays as it was.
 */
export async function handleWeb(
  ctx: WebContext,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  query: URLSearchParams,
): Promise<boolean> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') return false;
  if (path.startsWith('/static/')) {
    if (!sendStatic(req, res, path.slice('/static/'.length))) throw notFound();
    return true;
  }
  // Everyone else (moon, git, curl, scripts) gets the JSON routes of server/.
  if (!(req.headers.accept ?? '').includes('text/html')) return false;
  if (path === '/status') {
    sendHtml(req, res, 200, renderStatusPage(ctx, await ctx.status()));
    return true;
  }
  if (path === '/') {
    const catalog = await catalogOf(ctx).get();
    sendHtml(req, res, 200, renderListPage(ctx, catalog, readListQuery(query)));
    return true;
  }
  if (path.startsWith('/user/') && !path.endsWith('.zip')) {
    await moduleRoute(ctx, req, res, path.slice('/user/'.length), query);
    return true;
  }
  return false;
}

async function moduleRoute(
  ctx: WebContext,
  req: IncomingMessage,
  res: ServerResponse,
  rawModule: string,
  query: URLSearchParams,
): Promise<void> {
  // The same decoding and validation as the JSON route: names come from the URL, checked here.
  const module = decodePathSegments(rawModule)?.join('/');
  if (module === undefined || !isValidModuleName(module)) {
    return sendHtml(req, res, 404, notFoundPage(ctx, 'No such module', 'That is not a valid module name.'));
  }
  const catalog = await catalogOf(ctx).get();
  const entries = catalog.snapshot.modules.get(module);
  if (!entries || entries.size === 0) {
    return sendHtml(
      req,
      res,
      404,
      notFoundPage(ctx, 'Module not found', html`${module} is not served by this registry.`, module),
    );
  }
  const rows = await loadVersions(ctx, module, entries);
  const wanted = query.get('version');
  const selected = wanted === null ? rows[0] : rows.find((row) => row.entry.version === wanted);
  if (!selected) {
    return sendHtml(
      req,
      res,
      404,
      notFoundPage(ctx, 'Version not found', html`${module} has no version ${wanted ?? ''} here.`, module),
    );
  }
  sendHtml(req, res, 200, renderModulePage(ctx, catalog, module, rows, selected));
}

function catalogOf(ctx: WebContext): CatalogCache {
  let cache = catalogs.get(ctx);
  if (!cache) {
    cache = new CatalogCache(ctx);
    catalogs.set(ctx, cache);
  }
  return cache;
}

function notFoundPage(ctx: WebContext, title: string, message: SafeHtml | string, search?: string): SafeHtml {
  const body = html`<h1>${title}</h1>
<p class="lead">${message}</p>
<p>${search ? html`<a href="${listHref({ q: search.slice(search.lastIndexOf('/') + 1) })}">Search for similar modules</a> or ` : ''}<a href="/">browse all modules</a>.</p>`;
  return page(ctx, { title, section: undefined, body });
}

function sendHtml(req: IncomingMessage, res: ServerResponse, status: number, body: SafeHtml): void {
  const text = Buffer.from(body.value, 'utf8');
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': String(text.length),
    // The same URL answers JSON to other clients: caches must keep the two apart.
    Vary: 'Accept',
    'Cache-Control': 'no-cache',
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'same-origin',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}
