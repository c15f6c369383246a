import { isValidModuleName } from './module-name.js';
import { isValidVersion } from './version.js';

/**
 * Archive URLs, both directions, in one place (PROTOCOL.md 4). `moon` form-urlencodes the single
 * string `<module>/<version>`, so `/` becomes `%2F` and `+` becomes `%2B`; older tools use
 * literal slashes. We build the first form and accept both.
 */

/** application/x-www-form-urlencoded, exactly as `moon` encodes the archive key. */
export function formUrlEncode(value: string): string {
  return new URLSearchParams({ k: value }).toString().slice(2);
}

export function archiveKeyEncoded(module: string, version: string): string {
  return formUrlEncode(`${module}/${version}`);
}

/** `<base>/user/<encoded>.zip`, the URL `moon` requests for module@version. */
export function archiveUrl(baseUrl: string, module: string, version: string): string {
  return `${trimTrailingSlash(baseUrl)}/user/${archiveKeyEncoded(module, version)}.zip`;
}

export function trimTrailingSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

export interface ArchiveRef {
  module: string;
  version: string;
}

/**
 * Parses the part of a request path after `/user/` (still percent-encoded, `.zip` included).
 * Returns undefined for anything that is not a well-formed module and version, which covers
 * `..`, `%2e%2e`, encoded backslashes and NUL bytes: the caller answers 404 and never builds
 * a path from the raw URL.
 */
export function parseArchivePath(rawRest: string): ArchiveRef | undefined {
  if (!rawRest.endsWith('.zip')) return undefined;
  const segments = decodePathSegments(rawRest.slice(0, -'.zip'.length));
  if (!segments || segments.length < 3) return undefined;
  const version = segments[segments.length - 1] as string;
  const module = segments.slice(0, -1).join('/');
  if (!isValidModuleName(module) || !isValidVersion(version)) return undefined;
  return { module, version };
}

/**
 * Splits a raw path into decoded segments. Encoded slashes are separators here (that is how
 * `moon` sends the key), so both URL forms give the same segments. A literal `+` stays `+`
 * (paths are not form bodies).
 */
export function decodePathSegments(raw: string): string[] | undefined {
  try {
    return raw.split(/\/|%2f/i).map((part) => decodeURIComponent(part));
  } catch {
    return undefined;
  }
}
