import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodePathSegments } from '../core/archive-url.js';
import { isValidModuleName } from '../core/module-name.js';
import { isValidVersion } from '../core/version.js';

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

/** `owner/name@1.0.0/pkg/tool.wasm` -> owner/name, 1.0.0; undefined when it names no version. */
export function assetVersion(rest: string): { module: string; version: string } | undefined {
  const segments = decodePathSegments(rest);
  if (!segments) return undefined;
  const at = segments.findIndex((segment) => segment.includes('@'));
  if (at < 1) return undefined;
  const segment = segments[at] as string;
  const module = [...segments.slice(0, at), segment.slice(0, segment.lastIndexOf('@'))].join('/');
  const version = segment.slice(segment.lastIndexOf('@') + 1);
  return isValidModuleName(module) && isValidVersion(version) ? { module, version } : undefined;
}
