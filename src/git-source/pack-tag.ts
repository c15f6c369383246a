import { describeError } from '../core/errors.js';
import { listTreeSizes, readBlobs } from '../git/objects.js';
import type { ArchiveLimits, ModuleArchive } from '../hosted/module-archive.js';
import { packedFileRule, packGlobsOf, writeModuleZip } from '../hosted/pack-module.js';
import { preparePublish } from '../hosted/publish.js';
import type { IndexEntry } from '../index/index-file.js';
import type { ReleaseTag } from './tag-versions.js';

export type PackedTag =
  | { kind: 'packed'; bytes: Buffer; archive: ModuleArchive; entry: IndexEntry }
  /** Not a version: why, for the one warning naming the tag. */
  | { kind: 'skipped'; reason: string };

/**
 * Packs a release tag the way `moon package` packs the module folder (pack-module.ts), from
 * the tag's tree, with no work tree: the files below `path` (the module's folder, default the
 * root), moon.mod.json at the zip root, `include`/`exclude` honoured, symlinks and submodules
 * left out. Byte for byte deterministic: the same tree gives the same checksum in any registry,
 * so a version's bytes never change while its tag does not move. The index line is a
 * published module's (moon.mod.json's keys, `checksum`, and `created_at` the tag's commit time).
 */
export async function packTag(
  gitDir: string,
  tag: ReleaseTag,
  path: string | undefined,
  limits: ArchiveLimits,
): Promise<PackedTag> {
  const folder = path?.replace(/^\/+|\/+$/g, '') || undefined;
  let tree: Map<string, { oid: string; size: number }>;
  try {
    tree = await listTreeSizes(gitDir, folder ? `${tag.commit}:${folder}` : tag.commit);
  } catch {
    return { kind: 'skipped', reason: `it has no folder ${folder ?? '.'}` };
  }
  if (!tree.has('moon.mod.json'))
    return { kind: 'skipped', reason: `it has no moon.mod.json${folder ? ` in ${folder}` : ''}` };
  // Every file any include/exclude could pack, read in one go; bounded before it is read.
  const candidates = [...tree.keys()].filter(packedFileRule({ include: [], exclude: [] }));
  const bytes = candidates.reduce((sum, p) => sum + (tree.get(p)?.size ?? 0), 0);
  if (bytes > limits.maxUncompressed)
    return {
      kind: 'skipped',
      reason: `its files come to ${bytes} bytes, over the limit of ${limits.maxUncompressed}`,
    };
  const blobs = await readBlobs(
    gitDir,
    candidates.map((p) => tree.get(p)?.oid as string),
  );
  const contents = (p: string) => blobs.get(tree.get(p)?.oid as string) as Buffer;
  let manifest: unknown;
  try {
    manifest = JSON.parse(contents('moon.mod.json').toString('utf8'));
  } catch {
    return { kind: 'skipped', reason: 'its moon.mod.json is not valid JSON' };
  }
  const packs = packedFileRule(packGlobsOf(manifest));
  const zip = await writeModuleZip(
    candidates
      .filter(packs)
      .sort()
      .map((p) => ({ path: p, bytes: contents(p) })),
  );
  let prepared: Awaited<ReturnType<typeof preparePublish>>;
  try {
    prepared = await preparePublish(zip, limits, tag.committedAt);
  } catch (error) {
    return { kind: 'skipped', reason: describeError(error) };
  }
  if (prepared.archive.version !== tag.version) {
    return {
      kind: 'skipped',
      reason: `its moon.mod.json says version ${prepared.archive.version}, the tag ${tag.version}`,
    };
  }
  return { kind: 'packed', bytes: zip, ...prepared };
}
