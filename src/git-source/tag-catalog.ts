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
  /** Stores a newly packed archive (atomically) before its line is added. */
  store(module: string, version: string, checksum: string, bytes: Buffer): Promise<void>;
  /** Whether a packed version's archive is still stored (`verify --repair` deletes corrupt ones). */
  has(module: string, version: string, checksum: string): Promise<boolean>;
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
 * is packed and stored; a tag that now names another commit than the one its version was
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
      const warning = await restore(gitDir, catalog.module, release.version, known, options);
      if (warning) warnings.push(warning);
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
    await options.store(module, release.version, packed.archive.checksum, packed.bytes);
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
 * Packs a version again from the commit it was packed from when its archive is gone from the
 * store: packing is deterministic, so the bytes are the ones its line names, or nothing is stored.
 */
async function restore(
  gitDir: string,
  module: string | undefined,
  version: string,
  known: TagVersion,
  options: TagCatalogOptions,
): Promise<string | undefined> {
  if (!module || (await options.has(module, version, known.checksum))) return undefined;
  const release = { tag: known.tag, version, commit: known.commit, committedAt: new Date(0) };
  const packed = await packTag(gitDir, release, options.path, options.limits).catch(() => undefined);
  if (packed?.kind !== 'packed' || packed.archive.checksum !== known.checksum) {
    return `version ${version}: its archive is gone and commit ${known.commit.slice(0, 12)} (tag ${known.tag}) no longer packs to the same bytes`;
  }
  await options.store(module, version, known.checksum, packed.bytes);
  return undefined;
}
