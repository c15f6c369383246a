import type { SourceConfig } from '../config/schema.js';
import { archiveKeyEncoded, archiveUrl, formUrlEncode, trimTrailingSlash } from '../core/archive-url.js';
import { type AssetRef, assetUrlPath } from '../core/asset-path.js';

/**
 * Where a source keeps module@version's archive. mooncakes.io serves archives from a separate
 * host (PROTOCOL.md 1); other registries serve them under their own URL like we do, unless
 * `package_url_pattern` says otherwise. Placeholders: {url} (the source URL), {key} (the
 * form-urlencoded `module/version`, as `moon` sends it), {module}, {username} (the owner, the
 * module's first segment), {name} (the rest), {version}; each form-urlencoded, {module} and
 * {name} keep their slashes. moonbit-registry-tools wrote them `${url}`: both spellings work.
 */
const MOONCAKES_HOST = 'mooncakes.io';
const MOONCAKES_DOWNLOAD_BASE = 'https://download.mooncakes.io';
const PLACEHOLDER = /\$?\{(url|key|module|username|name|version)\}/g;

/** Whether a package_url_pattern can name every archive (the schema's check). */
export function isPackageUrlPattern(pattern: string): boolean {
  const used = new Set([...pattern.matchAll(PLACEHOLDER)].map((m) => m[1]));
  const startsWell = /^(\$?\{url\}|https?:\/\/)/.test(pattern);
  const names =
    used.has('key') ||
    (used.has('version') && (used.has('module') || (used.has('username') && used.has('name'))));
  return startsWell && names;
}

export function sourceArchiveUrl(source: SourceConfig, module: string, version: string): string {
  if (source.package_url_pattern) {
    const [owner = '', ...rest] = module.split('/');
    const encodePath = (segments: string[]) => segments.map(formUrlEncode).join('/');
    const values: Record<string, string> = {
      url: trimTrailingSlash(source.url),
      key: archiveKeyEncoded(module, version),
      module: encodePath(module.split('/')),
      username: formUrlEncode(owner),
      name: encodePath(rest),
      version: formUrlEncode(version),
    };
    return source.package_url_pattern.replace(PLACEHOLDER, (_, key: string) => values[key] ?? '');
  }
  return archiveUrl(downloadBase(source), module, version);
}

/**
 * Where a source keeps a prebuilt wasm or its `.sha256` (PROTOCOL.md 5): the same path as ours,
 * under the host its archives come from (a package_url_pattern names archives only, so those
 * sources serve assets under their own URL).
 */
export function sourceAssetUrl(source: SourceConfig, ref: AssetRef): string {
  return `${downloadBase(source)}/${assetUrlPath(ref)}`;
}

function downloadBase(source: SourceConfig): string {
  if (source.type === 'mooncakes' && new URL(source.url).hostname === MOONCAKES_HOST) {
    return MOONCAKES_DOWNLOAD_BASE;
  }
  return trimTrailingSlash(source.url);
}

/**
 * Where a source keeps its editor symbols (PROTOCOL.md 5): `symbols_url`, else beside its
 * archives: download.mooncakes.io for mooncakes.io, `URL/symbols.zip` for any other source.
 */
export function sourceSymbolsUrl(source: SourceConfig): string {
  if (source.symbols_url) return source.symbols_url;
  if (source.type === 'mooncakes' && new URL(source.url).hostname === MOONCAKES_HOST) {
    return `${MOONCAKES_DOWNLOAD_BASE}/symbols.zip`;
  }
  return `${trimTrailingSlash(source.url)}/symbols.zip`;
}
