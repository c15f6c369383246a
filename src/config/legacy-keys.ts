import type { z } from 'zod';
import { PRESETS } from './presets.js';
import type { ConfigObjectSchema, SourceConfig } from './schema.js';

type ConfigTables = z.output<typeof ConfigObjectSchema>;

/**
 * moonbit-registry-tools wrote one `[upstream]` table before it had `[[sources]]`. It stands for
 * a source named "mooncakes" (its URL is mooncakes.io) or "upstream" (any other registry, with
 * archives where the old tool fetched them), at the preset's priority, and is the default source unless `default_source` names another. A
 * `[[sources]]` of the same name wins: the table is then ignored (legacyNotices says so).
 */
const LEGACY_PACKAGE_URL_PATTERN = '{url}/user/{username}/{name}/{version}.zip';

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
    // Where moonbit-registry-tools asked for archives, and what its server answers; ours and
    // mooncakes-like registries answer it too (PROTOCOL.md 4: literal slashes are served).
    ...(mooncakes ? {} : { package_url_pattern: LEGACY_PACKAGE_URL_PATTERN }),
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

type RawTable = Record<string, unknown>;

/**
 * moonbit-registry-tools writes `default_source = "..."` after its `[[sources]]` blocks, where
 * TOML reads it as a key of the last source (or of its `[sources.auth]`). Returns where it sits
 * then, or undefined when it is not misplaced.
 */
export function misplacedDefaultSource(
  raw: RawTable,
): { path: Array<string | number>; value: string } | undefined {
  const sources = raw.sources;
  if (raw.default_source !== undefined || !Array.isArray(sources) || sources.length === 0) return undefined;
  const last = sources.length - 1;
  const item = sources[last] as RawTable;
  if (typeof item.default_source === 'string') return { path: ['sources', last], value: item.default_source };
  const auth = item.auth as RawTable | undefined;
  if (typeof auth?.default_source === 'string')
    return { path: ['sources', last, 'auth'], value: auth.default_source };
  return undefined;
}

/** `raw` with a misplaced default_source (see misplacedDefaultSource) moved to the top level. */
export function hoistDefaultSource(raw: RawTable): RawTable {
  const misplaced = misplacedDefaultSource(raw);
  if (!misplaced) return raw;
  const copy = structuredClone(raw);
  let table = copy as RawTable;
  for (const part of misplaced.path) table = (table as Record<string | number, unknown>)[part] as RawTable;
  delete table.default_source;
  copy.default_source = misplaced.value;
  return copy;
}
