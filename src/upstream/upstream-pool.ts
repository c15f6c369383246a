import type { HostedIndex } from '../hosted/hosted-index.js';
import type { IndexWarning } from '../index/index-file.js';
import { MergedCatalog } from '../index/merged-catalog.js';
import { type SourceCatalog, skippedEntriesWarning } from '../index/source-catalog.js';
import type { ShadowAttempt, SourcePolicy } from '../registry/source-policy.js';
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

  private fetchedUpstreams = 0;

  /**
   * `upstreams`: the enabled sources, highest priority first. With `published`, the modules
   * published here join the merge, and the policy decides what each source may provide.
   */
  constructor(
    upstreams: UpstreamSource[],
    breaker?: CircuitBreakerOptions,
    private readonly published?: { hosted: HostedIndex; policy: SourcePolicy },
  ) {
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

  /** Whether some upstream's index was ever fetched (published modules alone do not count). */
  get hasUpstreamIndex(): boolean {
    return this.fetchedUpstreams > 0;
  }

  /**
   * Re-reads each source's last fetched index and the published modules (a catalog is re-parsed
   * only when its commit moved) and makes the merged view from them. Sources never fetched are
   * left out. `onShadow` hears of upstream entries under `[hosted] exclusive`.
   */
  async reload(warn: IndexWarning, onShadow?: (attempt: ShadowAttempt) => void): Promise<MergedCatalog> {
    const catalogs: SourceCatalog[] = [];
    for (const upstream of this.upstreams) {
      const commit = await upstream.fetchedCommit();
      this.healthByName.get(upstream.name)?.knownCommit(commit);
      if (!commit) continue;
      catalogs.push(
        await this.cachedCatalog(upstream.name, commit, upstream.readCatalog.bind(upstream), warn),
      );
    }
    this.fetchedUpstreams = catalogs.length;
    if (!this.published) {
      this.current = new MergedCatalog(catalogs);
      return this.current;
    }
    const { hosted, policy } = this.published;
    const commit = await hosted.head();
    if (commit)
      catalogs.push(await this.cachedCatalog(hosted.name, commit, hosted.readCatalog.bind(hosted), warn));
    this.current = policy.merge(catalogs, onShadow);
    return this.current;
  }

  private async cachedCatalog(
    name: string,
    commit: string,
    read: (commit: string, warn: IndexWarning) => Promise<SourceCatalog>,
    warn: IndexWarning,
  ): Promise<SourceCatalog> {
    let catalog = this.catalogCache.get(name);
    if (catalog?.commit !== commit) {
      const skipped: string[] = [];
      catalog = await read(commit, (message) => skipped.push(message));
      if (skipped.length > 0) warn(skippedEntriesWarning(name, skipped));
      this.catalogCache.set(name, catalog);
    }
    return catalog;
  }

  /** Closes the connections; downloads still running after `graceMs` are aborted. */
  async close(graceMs = 2000): Promise<void> {
    await this.agents.close(graceMs);
  }
}
