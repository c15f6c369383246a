import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseAssetPath } from '../core/asset-path.js';

/**
 * Notes each prebuilt wasm (or `.sha256`) fully sent, by module@version, whatever answered it:
 * `/assets/<module>@<version>/...` (PROTOCOL.md 5). For `gc --older-than`.
 */
export function noteAssetDownload(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  record: (module: string, version: string) => void,
): void {
  if (req.method !== 'GET' || !path.startsWith('/assets/')) return;
  const owner = assetVersion(path.slice('/assets/'.length));
  if (!owner) return;
  res.once('close', () => {
    if (res.writableFinished && res.statusCode === 200) record(owner.module, owner.version);
  });
}

/** `owner/name@1.0.0/pkg/pkg.wasm` -> owner/name, 1.0.0; undefined when it names no asset. */
export function assetVersion(rest: string): { module: string; version: string } | undefined {
  const ref = parseAssetPath(rest);
  return ref ? { module: ref.module, version: ref.version } : undefined;
}
