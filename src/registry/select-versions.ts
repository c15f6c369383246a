import { RegistryError } from '../core/errors.js';
import { moduleMatcher } from '../core/module-glob.js';
import { moduleKey } from '../core/module-name.js';
import { selectForRequirement } from '../core/version.js';
import type { MergedCatalog } from '../index/merged-catalog.js';
import type { SourceCatalog } from '../index/source-catalog.js';

export interface VersionRef {
  module: string;
  version: string;
}

export interface Selection {
  /** module@version -> ref, for everything this run must mirror. */
  versions: Map<string, VersionRef>;
  /** How many came from the patterns themselves (the rest are dependencies). */
  matched: number;
  warnings: string[];
}

export interface SelectOptions {
  patterns: string[];
  /** Every module of the given catalogs. */
  full: boolean;
  /** Skip dependencies. */
  strict: boolean;
}

/**
 * Turns patterns into module versions: every version (but yanked ones) of each module whose
 * full name matches a glob (`*` stays within one path segment, `**` crosses them), then, unless strict, the
 * dependency closure. A dependency "x.y.z" needs the version `moon` itself would pick (the
 * smallest >= x.y.z in its compatibility set), looked up across all enabled sources, so a
 * client resolving against the mirror finds exactly what it asks for.
 */
export function selectVersions(
  roots: SourceCatalog[],
  merged: MergedCatalog,
  options: SelectOptions,
): Selection {
  const versions = new Map<string, VersionRef>();
  const add = (module: string, version: string) => {
    const key = moduleKey(module, version);
    if (versions.has(key)) return false;
    versions.set(key, { module, version });
    return true;
  };
  for (const module of matchModules(roots, options)) {
    for (const catalog of roots) {
      for (const version of catalog.modules.get(module)?.keys() ?? []) {
        // A yanked version is mirrored only when a dependency needs it (below).
        if (!merged.winner(module, version)?.entry.yanked) add(module, version);
      }
    }
  }
  const matched = versions.size;
  const warnings: string[] = [];
  // Thousands of dependency edges share about a thousand distinct requirements.
  const picks = new Map<string, string | undefined>();
  const pick = (module: string, requirement: string) => {
    const key = `${module} ${requirement}`;
    if (!picks.has(key)) picks.set(key, selectForRequirement(requirement, merged.versions(module)));
    return picks.get(key);
  };
  if (!options.strict) {
    const queue = [...versions.values()];
    for (let i = 0; i < queue.length; i++) {
      const ref = queue[i] as VersionRef;
      for (const dep of merged.winner(ref.module, ref.version)?.entry.deps ?? []) {
        const picked = pick(dep.module, dep.requirement);
        if (picked === undefined) {
          warnings.push(
            `${ref.module}@${ref.version} depends on ${dep.module} ${dep.requirement}, which no enabled source has`,
          );
        } else if (add(dep.module, picked)) {
          queue.push({ module: dep.module, version: picked });
        }
      }
    }
  }
  return { versions, matched, warnings };
}

function matchModules(roots: SourceCatalog[], options: SelectOptions): Set<string> {
  const names = new Set<string>();
  for (const catalog of roots) for (const module of catalog.modules.keys()) names.add(module);
  if (options.full) return names;
  const matched = new Set<string>();
  for (const pattern of options.patterns) {
    const isMatch = moduleMatcher([pattern]);
    let hits = 0;
    for (const name of names) {
      if (isMatch(name)) {
        matched.add(name);
        hits++;
      }
    }
    if (hits === 0) {
      const where = roots.map((c) => `"${c.source}"`).join(', ');
      throw new RegistryError('NOT_FOUND', `pattern "${pattern}" matches no module in source ${where}`, {
        hint: 'patterns match full module names: owner/name, owner/* (one level), owner/** (nested too)',
      });
    }
  }
  return matched;
}

/** Everything several selections ask for (the pattern matches of each come first). */
export function mergeSelections(selections: Selection[]): Selection {
  const matched = new Map<string, VersionRef>();
  const dependencies = new Map<string, VersionRef>();
  for (const selection of selections) {
    [...selection.versions].forEach(([key, ref], i) => {
      if (i < selection.matched) matched.set(key, ref);
      else dependencies.set(key, ref);
    });
  }
  for (const key of matched.keys()) dependencies.delete(key);
  return {
    versions: new Map([...matched, ...dependencies]),
    matched: matched.size,
    warnings: [...new Set(selections.flatMap((s) => s.warnings))],
  };
}
