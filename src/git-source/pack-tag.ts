import { describeError } from '../core/errors.js';
import { listTree, readBlobs } from '../git/objects.js';
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
  let files: Map<string, string>;
  try {
    files = await listTree(gitDir, folder ? `${tag.commit}:${folder}` : tag.commit);
  } catch {
    return { kind: 'skipped', reason: `it has no folder ${folder ?? '.'}` };
  }
  const manifestBlob = files.get('moon.mod.json');
  if (!manifestBlob)
    return { kind: 'skipped', reason: `it has no moon.mod.json${folder ? ` in ${folder}` : ''}` };
  const [manifestBytes] = (await readBlobs(gitDir, [manifestBlob])).values();
  let manifest: unknown;
  try {
    manifest = JSON.parse(manifestBytes?.toString('utf8') ?? '');
  } catch {
    return { kind: 'skipped', reason: 'its moon.mod.json is not valid JSON' };
  }
  const packs = packedFileRule(packGlobsOf(manifest));
  const paths = [...files.keys()].filter(packs).sort();
  const blobs = await readBlobs(
    gitDir,
    paths.map((p) => files.get(p) as string),
  );
  const bytes = await writeModuleZip(
    paths.map((p) => ({ path: p, bytes: blobs.get(files.get(p) as string) as Buffer })),
  );
  let prepared: Awaited<ReturnType<typeof preparePublish>>;
  try {
    prepared = await preparePublish(bytes, limits, tag.committedAt);
  } catch (error) {
    return { kind: 'skipped', reason: describeError(error) };
  }
  if (prepared.archive.version !== tag.version) {
    return {
      kind: 'skipped',
      reason: `its moon.mod.json says version ${prepared.archive.version}, the tag ${tag.version}`,
    };
  }
  return { kind: 'packed', bytes, ...prepared };
}
