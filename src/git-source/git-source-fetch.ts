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
import { createArchiveStore } from '../store/archive-store.js';
import { type TagCatalog, updateTagCatalog } from './tag-catalog.js';

/** What a git source needs besides its config: where archives go and what a packed one may cost. */
export interface GitSourceStorage {
  packagesDir: string;
  limits: ArchiveLimits;
}

export interface GitSourceFetch {
  name: string;
  refPattern: string | undefined;
  path: string | undefined;
  /** The source's index repository (data/sources/<name>/index.git, made by its UpstreamSource). */
  indexDir: string;
  branch: string;
  storage: GitSourceStorage;
  /** Fetches every tag of the repository into `repo`, force-moving moved ones. */
  fetchTags(repo: string): Promise<void>;
  warn(message: string): void;
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
 * packed and stored in data/packages (tag-catalog.ts), then the source's index repository gets
 * one commit with the module's `.index` file, so the rest of the registry reads it like any
 * fetched index. Returns that commit.
 */
export async function fetchGitSource(source: GitSourceFetch): Promise<string> {
  const folder = dirname(source.indexDir);
  const repo = join(folder, 'repo.git');
  if (!(await pathExists(join(repo, 'HEAD')))) {
    await runGit(['init', '--bare', '--quiet', repo]);
  }
  await source.fetchTags(repo);

  const catalogFile = join(folder, 'tags.json');
  const previous = await readCatalog(catalogFile);
  const store = createArchiveStore(source.storage.packagesDir);
  const update = await updateTagCatalog(repo, previous, {
    refPattern: source.refPattern,
    path: source.path,
    limits: source.storage.limits,
    has: (module, version, checksum) => store.has(module, version, checksum),
    store: async (module, version, checksum, bytes) => {
      if (!(await store.has(module, version, checksum)))
        await writeFileAtomic(store.pathFor(module, version, checksum), bytes);
    },
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
