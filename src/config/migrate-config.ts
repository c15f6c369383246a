import { hoistDefaultSource, legacyUpstreamSource, misplacedDefaultSource } from './legacy-keys.js';
import { ConfigObjectSchema } from './schema.js';

type RawTable = Record<string, unknown>;

/**
 * Rewrites moonbit-registry-tools' keys in the current layout, in the raw table (the caller
 * patches the text, so comments and order survive): `[upstream]` becomes the `[[sources]]`
 * entry it stood for (and default_source when none is set), `[server.smart_http]` goes, and
 * `${...}` placeholders in package_url_pattern become `{...}`. Returns what it changed.
 */
export function migrateConfig(raw: RawTable): string[] {
  const changes: string[] = [];
  const misplaced = misplacedDefaultSource(raw);
  if (misplaced) {
    Object.assign(raw, hoistDefaultSource(raw));
    changes.push(`default_source = "${misplaced.value}" moved out of the last [[sources]]`);
  }
  const tables = ConfigObjectSchema.parse(raw);
  const upstream = legacyUpstreamSource(tables);
  const sources = Array.isArray(raw.sources) ? (raw.sources as RawTable[]) : [];
  if (upstream) {
    if (!sources.some((s) => s.name === upstream.name)) {
      raw.sources = [...sources, { ...upstream }];
      changes.push(`[upstream] is now [[sources]] "${upstream.name}"`);
    } else {
      changes.push(`removed [upstream]: [[sources]] "${upstream.name}" replaced it already`);
    }
    delete raw.upstream;
    if (raw.default_source === undefined) {
      raw.default_source = upstream.name;
      changes.push(`default_source = "${upstream.name}"`);
    }
  }
  const server = raw.server as RawTable | undefined;
  if (server?.smart_http !== undefined) {
    delete server.smart_http;
    changes.push('removed [server.smart_http] (the server always speaks smart HTTP)');
  }
  for (const source of Array.isArray(raw.sources) ? (raw.sources as RawTable[]) : []) {
    const pattern = source.package_url_pattern;
    if (typeof pattern === 'string' && pattern.includes('${')) {
      source.package_url_pattern = pattern.replace(/\$\{(url|key|module|username|name|version)\}/g, '{$1}');
      changes.push(`sources "${String(source.name)}": package_url_pattern uses {...} placeholders`);
    }
  }
  return changes;
}
