import { compareVersions } from '../core/version.js';
import type { IndexEntry } from '../index/index-file.js';
import type { ServedSnapshot } from '../server/index-cache.js';
import { ownerOf } from './links.js';
import type { WebContext } from './web-context.js';

/** What the package list shows of one module: its latest version's line, read once per commit. */
export interface ModuleSummary {
  name: string;
  owner: string;
  latest: string;
  description: string;
  keywords: string[];
  license: string | undefined;
  /** `created_at` of the latest version, as written by the source. */
  updated: string | undefined;
  deprecated: boolean;
  versionCount: number;
  /** Sources of the served versions, most versions first. */
  sources: string[];
  /** Lower-case name, description and keywords, for search. */
  searchText: string;
}

export interface Counted {
  name: string;
  count: number;
}

/** The served index as the web UI needs it, computed once per index commit. */
export interface Catalog {
  commit: string | undefined;
  snapshot: ServedSnapshot;
  /** Sorted by name. */
  modules: ModuleSummary[];
  byName: Map<string, ModuleSummary>;
  versions: number;
  owners: Counted[];
  sources: Counted[];
  /** module -> modules whose latest version depends on it, sorted. */
  dependents: Map<string, string[]>;
}

/** The fields of an index line the pages show; anything else in the line is ignored. */
export interface LineFacts {
  description: string;
  keywords: string[];
  license: string | undefined;
  repository: unknown;
  homepage: unknown;
  createdAt: string | undefined;
  deprecated: string | undefined;
  yanked: string | undefined;
}

/** Reads what the pages show from a raw line; fields of the wrong type count as absent. */
export function lineFacts(raw: string): LineFacts {
  let line: Record<string, unknown> = {};
  try {
    const value: unknown = JSON.parse(raw);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      line = value as Record<string, unknown>;
    }
  } catch {
    // The served index only holds lines that parse; an empty record is the safe answer anyway.
  }
  const text = (value: unknown) => (typeof value === 'string' && value.trim() !== '' ? value : undefined);
  const keywords = Array.isArray(line.keywords)
    ? line.keywords.filter((k): k is string => typeof k === 'string' && k !== '').slice(0, 20)
    : [];
  // `deprecated` is a message; `yanked` has been seen as a boolean or a reason.
  const flag = (value: unknown) => (value === true ? '' : text(value));
  return {
    description: text(line.description) ?? '',
    keywords,
    license: text(line.license),
    repository: line.repository,
    homepage: line.homepage,
    createdAt: text(line.created_at),
    deprecated: flag(line.deprecated),
    // `yank --reason` keeps its reason beside the flag (hosted/version-marks.ts).
    yanked: line.yanked === true ? (text(line.yanked_reason) ?? '') : flag(line.yanked),
  };
}

/** Versions newest first. */
export function newestFirst(entries: Iterable<IndexEntry>): IndexEntry[] {
  return [...entries].sort((a, b) => compareVersions(b.version, a.version));
}

export async function buildCatalog(ctx: WebContext, snapshot: ServedSnapshot): Promise<Catalog> {
  const modules: ModuleSummary[] = [];
  const owners = new Map<string, number>();
  const sourceTotals = new Map<string, number>();
  const dependents = new Map<string, Set<string>>();
  let versions = 0;
  const all = [...snapshot.modules];
  // Each lookup may stat provenance.json: run them together rather than one after another.
  const sourceLists = await Promise.all(
    all.map(([name, entries]) =>
      Promise.all([...entries.values()].map((e) => ctx.sourceOf(name, e.version, e.checksum))),
    ),
  );
  for (let i = 0; i < all.length; i++) {
    const [name, entries] = all[i] as [string, Map<string, IndexEntry>];
    if (entries.size === 0) continue;
    versions += entries.size;
    let latest: IndexEntry | undefined;
    for (const entry of entries.values()) {
      if (!latest || compareVersions(entry.version, latest.version) > 0) latest = entry;
    }
    const perSource = new Map<string, number>();
    for (const source of sourceLists[i] ?? []) {
      if (source !== undefined) perSource.set(source, (perSource.get(source) ?? 0) + 1);
    }
    if (!latest) continue;
    for (const [source, count] of perSource)
      sourceTotals.set(source, (sourceTotals.get(source) ?? 0) + count);
    for (const dep of latest.deps) {
      if (dep.module === name) continue;
      const set = dependents.get(dep.module) ?? new Set<string>();
      set.add(name);
      dependents.set(dep.module, set);
    }
    const facts = lineFacts(latest.raw);
    const owner = ownerOf(name);
    owners.set(owner, (owners.get(owner) ?? 0) + 1);
    modules.push({
      name,
      owner,
      latest: latest.version,
      description: facts.description,
      keywords: facts.keywords,
      license: facts.license,
      updated: facts.createdAt,
      deprecated: facts.deprecated !== undefined,
      versionCount: entries.size,
      sources: [...perSource].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([s]) => s),
      searchText: `${name}\n${facts.description}\n${facts.keywords.join('\n')}`.toLowerCase(),
    });
  }
  modules.sort((a, b) => compareNames(a.name, b.name));
  const counted = (map: Map<string, number>) =>
    [...map].map(([name, count]) => ({ name, count })).sort((a, b) => compareNames(a.name, b.name));
  return {
    commit: snapshot.commit,
    snapshot,
    modules,
    byName: new Map(modules.map((m) => [m.name, m])),
    versions,
    owners: counted(owners),
    sources: counted(sourceTotals),
    dependents: new Map([...dependents].map(([m, set]) => [m, [...set].sort(compareNames)])),
  };
}

/** Case-insensitive, then by code point, so the order is the same on every machine. */
export function compareNames(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Keeps the catalog of the commit being served. The snapshot is per commit, and so is
 * provenance (a mirror writes both), so nothing here goes stale while the commit stays.
 */
export class CatalogCache {
  private current: { commit: string | undefined; promise: Promise<Catalog> } | undefined;

  constructor(private readonly ctx: WebContext) {}

  async get(): Promise<Catalog> {
    const snapshot = await this.ctx.snapshot();
    if (this.current && this.current.commit === snapshot.commit) return this.current.promise;
    const promise = buildCatalog(this.ctx, snapshot);
    const entry = { commit: snapshot.commit, promise };
    this.current = entry;
    // A failed build is not kept: the next request tries again.
    promise.catch(() => {
      if (this.current === entry) this.current = undefined;
    });
    return promise;
  }
}
