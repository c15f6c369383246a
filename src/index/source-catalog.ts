import { moduleFromIndexPath } from '../core/module-name.js';
import { listTree, readBlobs } from '../git/objects.js';
import { type IndexEntry, type IndexWarning, parseIndexFile } from './index-file.js';

/** Everything one source's index says, at one commit: module -> version -> entry (file order). */
export interface SourceCatalog {
  source: string;
  commit: string;
  modules: Map<string, Map<string, IndexEntry>>;
}

/** Reads a fetched source index (all of `user/**.index`) with one ls-tree and one cat-file. */
export async function readSourceCatalog(
  source: string,
  gitDir: string,
  commit: string,
  warn?: IndexWarning,
): Promise<SourceCatalog> {
  const files = new Map<string, string>();
  for (const [path, oid] of await listTree(gitDir, commit)) {
    const module = moduleFromIndexPath(path);
    if (module) files.set(module, oid);
    else if (path.startsWith('user/') && path.endsWith('.index'))
      warn?.(`${source}: ignoring ${path} (not a valid module name)`);
  }
  const blobs = await readBlobs(gitDir, files.values());
  const modules = new Map<string, Map<string, IndexEntry>>();
  for (const [module, oid] of files) {
    const entries = parseIndexFile(module, blobs.get(oid)?.toString('utf8') ?? '', warn);
    if (entries.size > 0) modules.set(module, entries);
  }
  return { source, commit, modules };
}
