import type { SourceConfig } from './schema.js';

/**
 * The URL given to a source that is never fetched over HTTP (a git repository, imported bundles):
 * under `.invalid` (RFC 2606), so nothing built from it can ever resolve.
 */
export function placeholderSourceUrl(name: string, kind: 'git-source' | 'bundle'): string {
  return `http://${name.toLowerCase().replace(/_/g, '-')}.${kind}.invalid`;
}

/**
 * Whether a source answers HTTP: a bundle source (fed by `import`) and a git source (its archives
 * packed here from tags) have placeholder URLs and no archives, prebuilt wasm or symbols to ask for.
 */
export function isHttpSource(source: SourceConfig): boolean {
  return source.type !== 'bundle' && source.type !== 'git';
}

/** Where a source's modules come from, for people (status, web UI): never a placeholder. */
export function sourceLocation(source: SourceConfig): string {
  if (source.type === 'git')
    return source.path ? `${source.git_url} (${source.path})` : (source.git_url ?? '');
  if (source.type === 'bundle') return 'bundles brought in by `moonbit-registry import`';
  return source.url;
}
