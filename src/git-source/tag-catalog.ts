import { describeError } from '../core/errors.js';
import type { ArchiveLimits } from '../hosted/module-archive.js';
import { packTag } from './pack-tag.js';
import { listReleaseTags } from './tag-versions.js';

/** One version a git source serves: the tag it came from and what its packing gave. */
export interface TagVersion {
  tag: string;
  commit: string;
  checksum: string;
  /** The index line, exactly as served. */
  line: string;
}

/**
 * What a git source has packed so far (kept beside its repository): the module it is, and
 * each version once packed. A version's line never changes once made: that is how a moved
 * tag is noticed, and why a version's served bytes never change.
 */
export interface TagCatalog {
  module: string | undefined;
  versions: Record<string, TagVersion>;
}

export interface TagCatalogOptions {
  refPattern: string | undefined;
  /** The module's folder in the repository; the root when undefined. */
  path: string | undefined;
  limits: ArchiveLimits;
  /** Hears of each newly packed archive (its bytes may be wanted again soon: a mirror's download). */
  onPacked?(checksum: string, bytes: Buffer): void;
}

export interface TagCatalogUpdate {
  catalog: TagCatalog;
  /** Versions packed by this run. */
  added: string[];
  /** One per tag passed over, naming it. */
  warnings: string[];
}

/**
 * Brings a git source's catalog up to its repository's release tags: each tag not packed yet
 * is packed, for its checksum and line (its archive is packed again when first wanted:
 * packArchiveOf below, so proxy mode stores only what clients ask for); a tag that now names another commit than the one its version was
 * packed from (force-pushed) is reported and its version keeps its bytes; a tag whose
 * moon.mod.json names another module than the source's, or another version than the tag, or
 * that has none, is passed over with a warning. A tag deleted upstream keeps its version:
 * clients may have locked it.
 */
export async function updateTagCatalog(
  gitDir: string,
  previous: TagCatalog,
  options: TagCatalogOptions,
): Promise<TagCatalogUpdate> {
  const catalog: TagCatalog = { module: previous.module, versions: { ...previous.versions } };
  const added: string[] = [];
  const warnings: string[] = [];
  const { tags, skipped } = await listReleaseTags(gitDir, options.refPattern);
  for (const { tag, reason } of skipped) warnings.push(`tag ${tag} skipped: ${reason}`);
  for (const release of tags) {
    const known = catalog.versions[release.version];
    if (known) {
      if (known.tag !== release.tag) {
        // `v1.0.0` and `1.0.0` both: the version stays with the tag it was packed from.
        warnings.push(`tag ${release.tag} skipped: version ${release.version} comes from tag ${known.tag}`);
      } else if (known.commit !== release.commit) {
        warnings.push(
          `tag ${release.tag} moved from ${known.commit.slice(0, 12)} to ${release.commit.slice(0, 12)}: version ${release.version} keeps what it served`,
        );
      }
      continue;
    }
    const packed = await packTag(gitDir, release, options.path, options.limits);
    if (packed.kind === 'skipped') {
      warnings.push(`tag ${release.tag} skipped: ${packed.reason}`);
      continue;
    }
    const module = packed.archive.module;
    if (catalog.module !== undefined && module !== catalog.module) {
      warnings.push(`tag ${release.tag} skipped: its moon.mod.json names ${module}, not ${catalog.module}`);
      continue;
    }
    options.onPacked?.(packed.archive.checksum, packed.bytes);
    catalog.module = module;
    catalog.versions[release.version] = {
      tag: release.tag,
      commit: release.commit,
      checksum: packed.archive.checksum,
      line: packed.entry.raw,
    };
    added.push(release.version);
  }
  return { catalog, added, warnings };
}

/**
 * The archive of a version in the catalog, packed again from the commit it was packed from
 * (not from where its tag may have moved since). Packing is deterministic, so these are the
 * bytes its line names; anything else is refused, never stored. Undefined when the catalog has
 * no such version.
 */
export async function packArchiveOf(
  gitDir: string,
  catalog: TagCatalog,
  module: string,
  version: string,
  options: TagCatalogOptions,
): Promise<{ bytes: Buffer } | { mismatch: string } | undefined> {
  const known = catalog.versions[version];
  if (!known || catalog.module !== module) return undefined;
  const release = { tag: known.tag, version, commit: known.commit, committedAt: new Date(0) };
  const packed = await packTag(gitDir, release, options.path, options.limits).catch((error: unknown) => ({
    kind: 'skipped' as const,
    reason: describeError(error),
  }));
  if (packed.kind !== 'packed') {
    return {
      mismatch: `commit ${known.commit.slice(0, 12)} (tag ${known.tag}) no longer packs: ${packed.reason}`,
    };
  }
  if (packed.archive.checksum !== known.checksum) {
    return {
      mismatch: `commit ${known.commit.slice(0, 12)} (tag ${known.tag}) now packs to ${packed.archive.checksum}, not ${known.checksum}`,
    };
  }
  return { bytes: packed.bytes };
}
