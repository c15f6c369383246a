import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { APP_JS } from './static/app-js.js';
import { FAVICON_SVG } from './static/favicon-svg.js';
import { STYLE_CSS } from './static/style-css.js';

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function asset(text: string, type: string): Asset {
  const body = Buffer.from(text, 'utf8');
  return { body, type, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 20)}"` };
}

/** Everything under /static: a fixed map, so no request can name a file on disk. */
const ASSETS = new Map<string, Asset>([
  ['style.css', asset(STYLE_CSS, 'text/css; charset=utf-8')],
  ['app.js', asset(APP_JS, 'text/javascript; charset=utf-8')],
  ['favicon.svg', asset(FAVICON_SVG, 'image/svg+xml')],
]);

/** `/static/<name>?v=<etag>`: pages link with the content hash, so the file may be cached for long. */
export function staticHref(name: string): string {
  const found = ASSETS.get(name);
  if (!found) throw new Error(`no static asset ${name}`);
  return `/static/${name}?v=${found.etag.slice(1, 9)}`;
}

/** Answers `/static/<name>`; false when there is no such asset (the caller answers 404). */
export function sendStatic(req: IncomingMessage, res: ServerResponse, name: string): boolean {
  const found = ASSETS.get(name);
  if (!found) return false;
  const headers = {
    'Content-Type': found.type,
    ETag: found.etag,
    // Linked with ?v=<hash>: a changed file gets a new URL, so the old one may be kept.
    'Cache-Control': 'public, max-age=31536000, immutable',
    'X-Content-Type-Options': 'nosniff',
  };
  if (req.headers['if-none-match'] === found.etag) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  res.writeHead(200, { ...headers, 'Content-Length': String(found.body.length) });
  res.end(req.method === 'HEAD' ? undefined : found.body);
  return true;
}
