import type { SourceConfig } from '../config/schema.js';
import { archiveKeyEncoded, archiveUrl, formUrlEncode, trimTrailingSlash } from '../core/archive-url.js';

/**
 * Where a source keeps module@version's archive. mooncakes.io serves archives from a separate
 * host (PROTOCOL.md 1); other registries serve them under their own URL like we do, unless
 * `package_url_pattern` says otherwise. Placeholders: {url} (the source URL), {key} (the
 * form-urlencoded `module/version`, as `moon` sends it), {module}, {version} (each
 * form-urlencoded; {module} keeps its slashes).
 */
const MOONCAKES_HOST = 'mooncakes.io';
const MOONCAKES_DOWNLOAD_BASE = 'https://download.mooncakes.io';

export function sourceArchiveUrl(source: SourceConfig, module: string, version: string): string {
  if (source.package_url_pattern) {
    return source.package_url_pattern
      .replaceAll('{url}', trimTrailingSlash(source.url))
      .replaceAll('{key}', archiveKeyEncoded(module, version))
      .replaceAll('{module}', module.split('/').map(formUrlEncode).join('/'))
      .replaceAll('{version}', formUrlEncode(version));
  }
  if (source.type === 'mooncakes' && new URL(source.url).hostname === MOONCAKES_HOST) {
    return archiveUrl(MOONCAKES_DOWNLOAD_BASE, module, version);
  }
  return archiveUrl(source.url, module, version);
}
