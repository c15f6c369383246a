import semver from 'semver';

/**
 * Version rules as `moon` applies them (PROTOCOL.md 6): all versions with major < 2 form one
 * compatibility set, each major from 2 up is its own; a requirement "x.y.z" picks the smallest
 * version >= x.y.z in its set.
 */

/**
 * A version is a folder name in data/packages, so it must fit in one (255 bytes), which semver's
 * own limit (256 characters) does not ensure. Real versions are a few dozen characters at most.
 */
const MAX_VERSION_LENGTH = 200;

/** Strict semver, build metadata included (`semver.valid` would drop it and lose `+3382e0600`). */
export function isValidVersion(version: string): boolean {
  if (version.length > MAX_VERSION_LENGTH) return false;
  const parsed = semver.parse(version);
  if (parsed === null) return false;
  const canonical = parsed.build.length > 0 ? `${parsed.version}+${parsed.build.join('.')}` : parsed.version;
  return canonical === version;
}

function compatSet(version: string): number {
  const major = semver.major(version);
  return major < 2 ? 0 : major;
}

/** Full semver order, with build metadata as a tie-breaker so the order is total. */
export function compareVersions(a: string, b: string): number {
  return semver.compareBuild(a, b);
}

/** The version `moon` would pick for `requirement` among `available`, or undefined. */
export function selectMinimal(requirement: string, available: Iterable<string>): string | undefined {
  if (!isValidVersion(requirement)) return undefined;
  const set = compatSet(requirement);
  let best: string | undefined;
  for (const version of available) {
    if (!isValidVersion(version) || compatSet(version) !== set) continue;
    if (semver.compare(version, requirement) < 0) continue;
    if (best === undefined || compareVersions(version, best) < 0) best = version;
  }
  return best;
}

/**
 * The version a dependency requirement needs. Exact versions follow `moon`'s rule; the few
 * requirements in the wild that are ranges (`*`, `^1.2.3`) or short (`0.1`) get the smallest
 * satisfying version, so a mirror still carries something that resolves.
 */
export function selectForRequirement(requirement: string, available: Iterable<string>): string | undefined {
  if (isValidVersion(requirement)) return selectMinimal(requirement, available);
  const range = semver.validRange(requirement);
  if (range === null) return undefined;
  return semver.minSatisfying([...available].filter(isValidVersion), range) ?? undefined;
}
