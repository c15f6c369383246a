import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AssetRef, describeAssetPackage, parseAssetPath } from '../core/asset-path.js';
import type { AssetStore } from '../store/asset-store.js';
import type { AssetPullThrough } from './asset-pull-through.js';
import { notFound } from './http-error.js';
import type { IndexCache } from './index-cache.js';
import { sendBlob } from './send-blob.js';

export interface AssetContext {
  store: AssetStore;
  index: IndexCache;
  /** Proxy mode: fetches a listed version's asset that is not stored yet. */
  pullThrough: AssetPullThrough | undefined;
}

/** A module@version's asset never changes once built. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

const CONTENT_TYPES: Record<AssetRef['kind'], string> = {
  wasm: 'application/wasm',
  sha256: 'text/plain; charset=utf-8',
};

/**
 * `GET|HEAD /assets/<module>@<version>/<package path>/<name>.wasm[.sha256]` (PROTOCOL.md 5).
 * Only for versions the served index lists; 404 means "no prebuilt wasm", as `moon` reads it.
 * The file path is built from the parsed, validated names, never from the raw URL.
 */
export async function handleAsset(
  ctx: AssetContext,
  req: IncomingMessage,
  res: ServerResponse,
  rawRest: string,
): Promise<void> {
  const ref = parseAssetPath(rawRest);
  if (!ref) throw notFound('not a prebuilt wasm path');
  const snapshot = await ctx.index.snapshot();
  const entry = snapshot.modules.get(ref.module)?.get(ref.version);
  if (!entry) throw notFound(`${ref.module}@${ref.version} is not served by this registry`);
  const none = () => notFound(`${describeAssetPackage(ref)} has no prebuilt wasm here`);
  // Both files or neither: a wasm whose .sha256 is not written yet is not served.
  let stored = await ctx.store.has(ref);
  if (!stored && ctx.pullThrough) stored = (await ctx.pullThrough.fetch(ref, entry.checksum)) === 'stored';
  if (!stored) throw none();
  const file = await ctx.store.read(ref);
  if (!file) throw none(); // removed meanwhile (gc, verify --repair)
  await sendBlob(req, res, file, { 'Content-Type': CONTENT_TYPES[ref.kind], 'Cache-Control': IMMUTABLE });
}
