import type { z } from 'zod';
import { locateKey } from './key-location.js';
import { legacyUpstreamSource, misplacedDefaultSource } from './legacy-keys.js';
import type { ConfigObjectSchema, RegistryConfig } from './schema.js';

/**
 * What a registry.toml says that loads but deserves a word: keys of moonbit-registry-tools that
 * mean something else here, or nothing. Printed once per command (on stderr), never fatal.
 */
export function configNotices(
  path: string,
  text: string,
  raw: Record<string, unknown>,
  tables: z.output<typeof ConfigObjectSchema>,
  config: RegistryConfig,
): string[] {
  const at = (keyPath: Array<string | number>) => {
    const line = locateKey(text, keyPath);
    return `${path}${line ? ` line ${line}` : ''}`;
  };
  const notices: string[] = [];
  const misplaced = misplacedDefaultSource(raw);
  if (misplaced) {
    notices.push(
      `${at([...misplaced.path, 'default_source'])}: default_source is written after the [[sources]], where TOML reads it as part of the last one (moonbit-registry-tools wrote it there); it is read as the top-level key; run \`moonbit-registry config migrate\` to move it`,
    );
  }
  const upstream = legacyUpstreamSource(tables);
  if (upstream) {
    const shadowed = tables.sources.some((s) => s.name === upstream.name);
    notices.push(
      shadowed
        ? `${at(['upstream'])}: [upstream] is ignored: a [[sources]] named "${upstream.name}" replaces it; run \`moonbit-registry config migrate\` to remove it`
        : `${at(['upstream'])}: [upstream] (moonbit-registry-tools' single source) is used as source "${upstream.name}", priority ${upstream.priority}${config.default_source === upstream.name ? ', the default source' : ''}; run \`moonbit-registry config migrate\` to rewrite it as [[sources]]`,
    );
  }
  if (tables.server.smart_http) {
    notices.push(
      `${at(['server', 'smart_http'])}: [server.smart_http] is ignored: the server always speaks git smart HTTP itself, no git-http-backend needed`,
    );
  }
  if (config.git.auto_push && config.git.remote_url === '') {
    notices.push(
      `${at(['git', 'auto_push'])}: [git] auto_push is on but remote_url is empty: nothing is pushed`,
    );
  }
  return notices;
}
