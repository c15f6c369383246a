import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import semver from 'semver';
import { z } from 'zod';
import { RegistryError } from '../core/errors.js';
import { indexPathForModule } from '../core/module-name.js';
import { writeFileAtomic } from '../fs/atomic-write.js';
import { pathExists } from '../fs/path-exists.js';
import { writeCommit } from '../git/commit-writer.js';
import { resolveCommit } from '../git/objects.js';
import { runGit } from '../git/run-git.js';
import type { ArchiveLimits } from '../hosted/module-archive.js';
import { packArchiveOf, type TagCatalog, type TagCatalogOptions, updateTagCatalog } from './tag-catalog.js';

/** A git source as its packing sees it. */
export interface GitSourceRepository {
  name: string;
  refPattern: string | undefined;
  path: string | undefined;
  /** The source's index repository (data/sources/<name>/index.git, made by its UpstreamSource). */
  indexDir: string;
  /** What a packed archive may cost: the limits of a publish. */
  limits: ArchiveLimits;
}

export interface GitSourceFetch extends GitSourceRepository {
  branch: string;
  /** Fetches every tag of the repository into `repo`, force-moving moved ones. */
  fetchTags(repo: string): Promise<void>;
  warn(message: string): void;
  onPacked?(checksum: string, bytes: Buffer): void;
}

const CatalogSchema = z.object({
  module: z.string().optional(),
  versions: z.record(
    z.string(),
    z.object({ tag: z.string(), commit: z.string(), checksum: z.string(), line: z.string() }),
  ),
});

/**
 * A git source's "index fetch": `git fetch` of the repository's tags into
 * data/sources/<name>/repo.git (incremental: only new objects come), each new release tag
 * packed for its checksum and line (tag-catalog.ts), then the source's index repository gets
 * one commit with the module's `.index` file, so the rest of the registry reads it like any
 * fetched index. Returns that commit. Archives are packed again when wanted (packGitArchive).
 */
export async function fetchGitSource(source: GitSourceFetch): Promise<string> {
  const { repo, catalogFile } = gitSourceFiles(source);
  if (!(await pathExists(join(repo, 'HEAD')))) {
    await runGit(['init', '--bare', '--quiet', repo]);
  }
  await source.fetchTags(repo);

  const previous = await readCatalog(catalogFile);
  const update = await updateTagCatalog(repo, previous, {
    ...catalogOptions(source),
    ...(source.onPacked ? { onPacked: source.onPacked } : {}),
  });
  for (const warning of update.warnings) source.warn(`source "${source.name}": ${warning}`);
  await writeFileAtomic(catalogFile, `${JSON.stringify(update.catalog, null, 1)}\n`);

  const parent = await resolveCommit(source.indexDir, `refs/heads/${source.branch}`);
  const { module } = update.catalog;
  if (parent && update.added.length === 0) return parent;
  const versions = Object.entries(update.catalog.versions).sort(([a], [b]) => semver.compare(a, b));
  const changes = new Map<string, Buffer | null>();
  if (module)
    changes.set(indexPathForModule(module), Buffer.from(versions.map(([, v]) => `${v.line}\n`).join('')));
  return writeCommit({
    gitDir: source.indexDir,
    branch: source.branch,
    parent,
    message: update.added.length > 0 ? `tags ${update.added.join(', ')}` : 'no release tags yet',
    changes,
  });
}

export type PackedGitArchive =
  | { kind: 'packed'; bytes: Buffer }
  /** The source has no such version (not fetched yet, or another module's). */
  | { kind: 'unknown' }
  /** The version's commit no longer packs to the bytes its line names: nothing is stored. */
  | { kind: 'mismatch'; reason: string };

/**
 * The archive of one version of a git source, packed from the commit its line was made from:
 * how mirror, pull-through and `verify --repair` get a git source's archives.
 */
export async function packGitArchive(
  source: GitSourceRepository,
  module: string,
  version: string,
  checksum: string,
): Promise<PackedGitArchive> {
  const { repo, catalogFile } = gitSourceFiles(source);
  const catalog = await readCatalog(catalogFile);
  if (catalog.versions[version]?.checksum !== checksum) return { kind: 'unknown' };
  const packed = await packArchiveOf(repo, catalog, module, version, catalogOptions(source));
  if (!packed) return { kind: 'unknown' };
  return 'bytes' in packed
    ? { kind: 'packed', bytes: packed.bytes }
    : { kind: 'mismatch', reason: packed.mismatch };
}

/** Beside the source's index repository: the fetched repository and what was packed from it. */
function gitSourceFiles(source: GitSourceRepository): { repo: string; catalogFile: string } {
  const folder = dirname(source.indexDir);
  return { repo: join(folder, 'repo.git'), catalogFile: join(folder, 'tags.json') };
}

function catalogOptions(source: GitSourceRepository): TagCatalogOptions {
  return { refPattern: source.refPattern, path: source.path, limits: source.limits };
}

async function readCatalog(file: string): Promise<TagCatalog> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return { module: undefined, versions: {} };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = CatalogSchema.safeParse(json);
  if (!parsed.success)
    throw new RegistryError('INVALID', `${file} is damaged: remove it to pack every tag again`);
  return { module: parsed.data.module, versions: parsed.data.versions };
}
