import type { IndexEntry } from './index-file.js';
import type { SourceCatalog } from './source-catalog.js';

/** An index line together with the source it came from. */
export interface SourcedEntry {
  source: string;
  entry: IndexEntry;
}

/**
 * The union of several sources' catalogs, in priority order (highest first). For each
 * module@version the first source that has it wins: its line, checksum and archive are the
 * ones served. Lower sources still contribute versions nobody above them has.
 */
export class MergedCatalog {
  private readonly byModule = new Map<string, Map<string, SourcedEntry[]>>();

  constructor(readonly catalogs: SourceCatalog[]) {
    for (const catalog of catalogs) {
      for (const [module, versions] of catalog.modules) {
        let merged = this.byModule.get(module);
        if (!merged) {
          merged = new Map();
          this.byModule.set(module, merged);
        }
        for (const [version, entry] of versions) {
          const candidates = merged.get(version);
          if (candidates) candidates.push({ source: catalog.source, entry });
          else merged.set(version, [{ source: catalog.source, entry }]);
        }
      }
    }
  }

  modules(): IterableIterator<string> {
    return this.byModule.keys();
  }

  /** Every version any source has of a module. */
  versions(module: string): string[] {
    return [...(this.byModule.get(module)?.keys() ?? [])];
  }

  /** Every source's line for module@version, highest priority first. */
  candidates(module: string, version: string): SourcedEntry[] {
    return this.byModule.get(module)?.get(version) ?? [];
  }

  winner(module: string, version: string): SourcedEntry | undefined {
    return this.candidates(module, version)[0];
  }

  /** Sources that can deliver exactly the winning bytes: same module@version, same checksum. */
  sourcesWithChecksum(module: string, version: string, checksum: string): SourcedEntry[] {
    return this.candidates(module, version).filter((c) => c.entry.checksum === checksum);
  }
}
