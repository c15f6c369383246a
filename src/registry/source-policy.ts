import type { RegistryConfig } from '../config/schema.js';
import { moduleMatcher } from '../core/module-glob.js';
import { MergedCatalog } from '../index/merged-catalog.js';
import type { SourceCatalog } from '../index/source-catalog.js';

/** An upstream listed a module that only the hosted source may have (`[hosted] exclusive`). */
export interface ShadowAttempt {
  source: string;
  module: string;
}

/**
 * The one rule for which source may provide what, and which one wins. Catalogs are merged in
 * priority order (the hosted source at `[hosted] priority`, every upstream at its own; file order
 * breaks ties, the hosted source first). An upstream provides only modules its `include` globs
 * match and its `exclude` globs do not, and never one under `[hosted] exclusive`: a public
 * registry must not be able to shadow a private name (dependency confusion), even with a version
 * the team never published.
 */
export class SourcePolicy {
  private readonly hostedName: string;
  private readonly order = new Map<string, number>();
  private readonly exclusive: (module: string) => boolean;
  private readonly admits = new Map<string, (module: string) => boolean>();

  constructor(config: RegistryConfig) {
    this.hostedName = config.hosted.name;
    this.order.set(config.hosted.name, config.hosted.priority);
    this.exclusive = moduleMatcher(config.hosted.exclusive);
    for (const source of config.sources) {
      this.order.set(source.name, source.priority);
      const include = source.include ? moduleMatcher(source.include) : () => true;
      const exclude = moduleMatcher(source.exclude ?? []);
      this.admits.set(source.name, (module) => include(module) && !exclude(module));
    }
  }

  get hosted(): string {
    return this.hostedName;
  }

  /**
   * The merged view of `catalogs` (hosted and upstream ones, any order), each upstream's cut
   * down to what it may provide. `onShadow` hears of every module an upstream listed under an
   * exclusive glob.
   */
  merge(catalogs: SourceCatalog[], onShadow?: (attempt: ShadowAttempt) => void): MergedCatalog {
    const ranked = catalogs
      .map((catalog, at) => ({ catalog: this.restrict(catalog, onShadow), at }))
      .sort(
        (a, b) =>
          this.rank(a.catalog.source) - this.rank(b.catalog.source) ||
          Number(b.catalog.source === this.hostedName) - Number(a.catalog.source === this.hostedName) ||
          a.at - b.at,
      );
    return new MergedCatalog(ranked.map((r) => r.catalog));
  }

  private rank(source: string): number {
    return this.order.get(source) ?? Number.MAX_SAFE_INTEGER;
  }

  private restrict(catalog: SourceCatalog, onShadow?: (attempt: ShadowAttempt) => void): SourceCatalog {
    if (catalog.source === this.hostedName) return catalog;
    const admits = this.admits.get(catalog.source) ?? (() => true);
    let modules: SourceCatalog['modules'] | undefined;
    for (const module of catalog.modules.keys()) {
      const shadow = this.exclusive(module);
      if (shadow) onShadow?.({ source: catalog.source, module });
      if (!shadow && admits(module)) continue;
      // Copy on the first module left out: most catalogs keep everything.
      modules ??= new Map(catalog.modules);
      modules.delete(module);
    }
    return modules ? { ...catalog, modules } : catalog;
  }
}

/** The warning a run prints for an upstream that lists an exclusive module. */
export function shadowWarning(attempt: ShadowAttempt): string {
  return `source "${attempt.source}" lists ${attempt.module}, which only published modules may provide ([hosted] exclusive): ignored`;
}
