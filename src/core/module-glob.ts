import picomatch from 'picomatch';

/**
 * Globs over full module names, the one rule for `mirror` patterns, publish token scopes,
 * `[hosted] exclusive` and a source's include/exclude: `owner/name`, `owner/*` (one level),
 * `owner/**` (nested names too). Names may start with a dot, so `*` matches those as well.
 */
export function moduleMatcher(patterns: readonly string[]): (module: string) => boolean {
  if (patterns.length === 0) return () => false;
  return picomatch([...patterns], { dot: true });
}

/** What a module glob must look like: an owner part, a slash, then the rest. */
export function isModuleGlob(pattern: string): boolean {
  return /^[^/\s]+\/\S+$/.test(pattern) && !pattern.includes('//');
}
