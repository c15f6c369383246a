import type { IndexWarning } from '../index/index-file.js';
import { MergedCatalog } from '../index/merged-catalog.js';
import { type SourceCatalog, skippedEntriesWarning } from '../index/source-catalog.js';
import type { CircuitBreakerOptions } from './circuit-breaker.js';
import { createSourceAgents, type SourceAgents } from './http-agent.js';
import { SourceHealth, type SourceHealthReport } from './source-health.js';
import type { UpstreamSource } from './upstream-source.js';

/**
 * The enabled sources as a long-running server sees them: one connection pool and one health
 * record (with its circuit breaker) per source, the last catalog read of each, and the merged
 * view that decides which source serves which module@version.
 */
export class UpstreamPool {
  readonly upstreams: UpstreamSource[];
  private readonly byName: Map<string, UpstreamSource>;
  private readonly healthByName = new Map<string, SourceHealth>();
  private readonly agents: SourceAgents;
  private readonly catalogCache = new Map<string, SourceCatalog>();
  private current = new MergedCatalog([]);

  /** `upstreams`: the enabled sources, highest priority first. */
  constructor(upstreams: UpstreamSource[], breaker?: CircuitBreakerOptions) {
    this.upstreams = upstreams;
    this.byName = new Map(upstreams.map((u) => [u.name, u]));
    for (const upstream of this.upstreams) {
      this.healthByName.set(upstream.name, new SourceHealth(upstream.name, breaker));
    }
    // Enough connections per source for a burst of misses; more requests queue in undici.
    this.agents = createSourceAgents(32);
  }

  get merged(): MergedCatalog {
    return this.current;
  }

  health(name: string): SourceHealth | undefined {
    return this.healthByName.get(name);
  }

  healthReports(): SourceHealthReport[] {
    return this.upstreams.map((u) => (this.healthByName.get(u.name) as SourceHealth).report());
  }

  readonly dispatcherFor = (source: UpstreamSource) => this.agents.dispatcherFor(source);

  /** Sources that publish module@version with exactly this checksum, highest priority first. */
  sourcesFor(module: string, version: string, checksum: string): UpstreamSource[] {
    return this.current
      .sourcesWithChecksum(module, version, checksum)
      .flatMap((candidate) => this.byName.get(candidate.source) ?? []);
  }

  /**
   * Re-reads each source's last fetched index (a catalog is re-parsed only when its commit
   * moved) and makes the merged view from them. Sources never fetched are left out.
   */
  async reload(warn: IndexWarning): Promise<MergedCatalog> {
    const catalogs: SourceCatalog[] = [];
    for (const upstream of this.upstreams) {
      const commit = await upstream.fetchedCommit();
      this.healthByName.get(upstream.name)?.knownCommit(commit);
      if (!commit) continue;
      let catalog = this.catalogCache.get(upstream.name);
      if (catalog?.commit !== commit) {
        const skipped: string[] = [];
        catalog = await upstream.readCatalog(commit, (message) => skipped.push(message));
        if (skipped.length > 0) warn(skippedEntriesWarning(upstream.name, skipped));
        this.catalogCache.set(upstream.name, catalog);
      }
      catalogs.push(catalog);
    }
    this.current = new MergedCatalog(catalogs);
    return this.current;
  }

  /** Closes the connections; downloads still running after `graceMs` are aborted. */
  async close(graceMs = 2000): Promise<void> {
    await this.agents.close(graceMs);
  }
}
