import type { ServerResponse } from 'node:http';
import type { RegistryConfig, SourceConfig } from '../config/schema.js';
import { decodePathSegments } from '../core/archive-url.js';
import { isValidModuleName } from '../core/module-name.js';
import { compareVersions } from '../core/version.js';
import { sourceOf } from '../registry/provenance.js';
import { notFound, sendJson } from './http-error.js';
import type { IndexCache } from './index-cache.js';
import type { ProvenanceCache } from './provenance-cache.js';

export interface InfoContext {
  config: RegistryConfig;
  index: IndexCache;
  provenance: ProvenanceCache;
}

export function handleHealth(res: ServerResponse): void {
  sendJson(res, 200, { status: 'ok' });
}

/** `GET /`: what this registry is and serves. */
export async function handleRoot(ctx: InfoContext, res: ServerResponse): Promise<void> {
  const snapshot = await ctx.index.snapshot();
  let versions = 0;
  for (const entries of snapshot.modules.values()) versions += entries.size;
  sendJson(res, 200, {
    name: ctx.config.registry.name,
    index: { commit: snapshot.commit ?? null, modules: snapshot.modules.size, versions },
    sources: ctx.config.sources.map((source) => publicSource(source, ctx.config.default_source)),
  });
}

/**
 * A source as anyone may see it. Fields are picked one by one so that `auth` (and any field
 * added later) stays private; the config schema already refuses credentials inside URLs.
 */
function publicSource(source: SourceConfig, defaultSource: string | undefined) {
  return {
    name: source.name,
    type: source.type,
    url: source.url,
    index_url: source.index_url,
    priority: source.priority,
    enabled: source.enabled,
    default: source.name === defaultSource,
  };
}

/** Fields of an index line worth showing next to a version, when the line has them. */
const LINE_FIELDS = ['created_at', 'yanked', 'deprecated'] as const;

/** `GET /user/<module>`: the served versions of one module, in semver order, with their sources. */
export async function handleModule(ctx: InfoContext, res: ServerResponse, rawModule: string): Promise<void> {
  const module = decodePathSegments(rawModule)?.join('/');
  if (module === undefined || !isValidModuleName(module)) throw notFound('no such module');
  const entries = (await ctx.index.snapshot()).modules.get(module);
  if (!entries || entries.size === 0) throw notFound(`module ${module} is not served here`);
  const provenance = await ctx.provenance.get();
  const versions = [...entries.values()]
    .sort((a, b) => compareVersions(a.version, b.version))
    .map((entry) => {
      const line = JSON.parse(entry.raw) as Record<string, unknown>;
      const extra = Object.fromEntries(
        LINE_FIELDS.filter((f) => line[f] !== undefined).map((f) => [f, line[f]]),
      );
      return {
        version: entry.version,
        checksum: entry.checksum,
        source: sourceOf(provenance, module, entry.version, entry.checksum) ?? null,
        ...extra,
      };
    });
  sendJson(res, 200, { module, versions });
}
