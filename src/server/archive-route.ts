import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArchivePath } from '../core/archive-url.js';
import type { ArchiveStore } from '../store/archive-store.js';
import { notFound } from './http-error.js';
import type { IndexCache } from './index-cache.js';
import type { PullThrough } from './pull-through.js';
import { sendBlob } from './send-blob.js';

export interface ArchiveContext {
  store: ArchiveStore;
  index: IndexCache;
  /** Pull-through mode: fetches listed archives that are not stored yet. */
  pullThrough: PullThrough | undefined;
  /** `[storage] redirect`: send clients to a short-lived presigned URL of the bucket. */
  redirect?: boolean;
  /** How each archive GET was answered, for /metrics and the downloads chart. */
  onArchive?(result: ArchiveResult, archive: { module: string; version: string } | undefined): void;
}

/**
 * hit: the whole archive sent from the store; miss: the whole archive sent while fetched from an
 * upstream; absent: 404; error: any other failure (the upstream fetch failed); aborted: the
 * response was cut before its end (the client left, or the upstream body broke off).
 */
export type ArchiveResult = 'hit' | 'miss' | 'not_modified' | 'absent' | 'error' | 'aborted';

/** Archives never change for a module@version (PROTOCOL.md 4), so caches may keep them forever. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * `GET|HEAD /user/<module>/<version>.zip`, either URL form. Only versions listed in the served
 * index are served, from the store path named by that line's checksum: the file path is built
 * from validated names and the index, never from the raw URL.
 */
export async function handleArchive(
  ctx: ArchiveContext,
  req: IncomingMessage,
  res: ServerResponse,
  rawRest: string,
): Promise<void> {
  // Known only when the response is over: what was sent, how it ended, and where from.
  let fromUpstream = false;
  const ref = parseArchivePath(rawRest);
  const onArchive = ctx.onArchive;
  if (req.method === 'GET' && onArchive) {
    res.once('close', () => onArchive(archiveResult(res, fromUpstream), ref));
  }
  // The local index first; only a version it does not list costs a look at the shared one.
  const listed = async (local: boolean) =>
    ref ? (await ctx.index.snapshot({ local })).modules.get(ref.module)?.get(ref.version) : undefined;
  const entry = (await listed(true)) ?? (await listed(false));
  if (!ref || !entry) {
    throw ref
      ? notFound(`${ref.module}@${ref.version} is not served by this registry`)
      : notFound('not an archive of a served module');
  }
  const etag = `"${entry.checksum}"`;
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    res.writeHead(304, { ETag: etag, 'Cache-Control': IMMUTABLE });
    res.end();
    return;
  }
  if (req.method === 'GET' && ctx.redirect) {
    const location = await presignedLocation(ctx.store, ref.module, ref.version, entry.checksum);
    if (location) {
      // Not cached: the URL expires, the archive behind it does not.
      res.writeHead(302, { Location: location, 'Cache-Control': 'no-store' });
      res.end();
      return;
    }
  }
  const read = () => ctx.store.read(ref.module, ref.version, entry.checksum);
  const missing = () => notFound(`the archive of ${ref.module}@${ref.version} is missing from the store`);
  let stored = await read();
  if (!stored && ctx.pullThrough) {
    const archive = { module: ref.module, version: ref.version, checksum: entry.checksum };
    // Set before serving: the response may close before serve() returns.
    fromUpstream = true;
    const answered = await ctx.pullThrough.serve(req, res, archive, (length) => ({
      'Content-Type': 'application/zip',
      ...(length === undefined ? {} : { 'Content-Length': String(length) }),
      ETag: etag,
      'Cache-Control': IMMUTABLE,
    }));
    if (answered) return;
    fromUpstream = false;
    stored = await read(); // stored meanwhile
  }
  if (!stored) throw missing();
  await sendBlob(req, res, stored, {
    'Content-Type': 'application/zip',
    ETag: etag,
    'Cache-Control': IMMUTABLE,
  });
}

/** How long a redirect's presigned URL lasts: enough to start the download, no more. */
const PRESIGNED_SECONDS = 300;

/** A presigned URL of the stored archive, when the store gives them and holds it. */
async function presignedLocation(
  store: ArchiveStore,
  module: string,
  version: string,
  checksum: string,
): Promise<string | undefined> {
  const presign = store.blobs.presignedUrl?.bind(store.blobs);
  if (!presign || !(await store.has(module, version, checksum))) return undefined;
  return presign(store.keyFor(module, version, checksum), PRESIGNED_SECONDS);
}

function archiveResult(res: ServerResponse, fromUpstream: boolean): ArchiveResult {
  if (!res.writableFinished) return 'aborted';
  if (res.statusCode === 304) return 'not_modified';
  if (res.statusCode === 302) return 'hit'; // sent to the bucket
  if (res.statusCode === 404) return 'absent';
  if (res.statusCode >= 400) return 'error';
  return fromUpstream ? 'miss' : 'hit';
}

/** `If-None-Match` as a list of (possibly weak) tags, or `*`. */
export function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((tag) => {
    const value = tag.trim();
    return value === '*' || value === etag || value === `W/${etag}`;
  });
}
