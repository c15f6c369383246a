import type { z } from 'zod';
import { PRESETS } from './presets.js';
import type { ConfigObjectSchema, SourceConfig } from './schema.js';

type ConfigTables = z.output<typeof ConfigObjectSchema>;

/**
 * moonbit-registry-tools wrote one `[upstream]` table before it had `[[sources]]`. It stands for
 * a source named "mooncakes" (its URL is mooncakes.io) or "upstream" (any other registry), at
 * the preset's priority, and is the default source unless `default_source` names another. A
 * `[[sources]]` of the same name wins: the table is then ignored (legacyNotices says so).
 */
export function legacyUpstreamSource(config: ConfigTables): SourceConfig | undefined {
  const { upstream } = config;
  if (!upstream) return undefined;
  const mooncakes = new URL(upstream.url).hostname === new URL(PRESETS.mooncakes.url).hostname;
  return {
    name: mooncakes ? 'mooncakes' : 'upstream',
    type: mooncakes ? 'mooncakes' : 'custom',
    url: upstream.url,
    index_url: upstream.index_url ?? `${upstream.url.replace(/\/+$/, '')}/git/index`,
    index_type: 'git',
    enabled: upstream.enabled,
    priority: PRESETS.mooncakes.priority,
  };
}

export function withLegacyUpstream(config: ConfigTables): ConfigTables {
  const source = legacyUpstreamSource(config);
  if (!source || config.sources.some((s) => s.name === source.name)) return config;
  return {
    ...config,
    sources: [...config.sources, source],
    default_source: config.default_source ?? source.name,
  };
}
