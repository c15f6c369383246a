import { eventLoopTurns } from '../core/event-loop-turns.js';
import { quoteForLog } from '../core/log-text.js';
import { indexPathForModule, moduleFromIndexPath } from '../core/module-name.js';
import { listTree, readBlobs } from '../git/objects.js';
import { runGit } from '../git/run-git.js';
import { type IndexEntry, type IndexWarning, parseIndexFile, parseIndexFileInTurns } from './index-file.js';

/** Everything one source's index says, at one commit: module -> version -> entry (file order). */
export interface SourceCatalog {
  source: string;
  commit: string;
  modules: Map<string, Map<string, IndexEntry>>;
}

/**
 * Reads a fetched source index (all of `user/**.index`) with one ls-tree and one cat-file. Paths
 * come from upstream: they are only ever names to check, never read from or written to on disk,
 * and each one that cannot be a module's index file is skipped with a warning.
 */
export async function readSourceCatalog(
  source: string,
  gitDir: string,
  commit: string,
  warn?: IndexWarning,
): Promise<SourceCatalog> {
  const looksLikeIndex = (path: string) => path.startsWith('user/') && path.endsWith('.index');
  const files = new Map<string, string>();
  // A symlink's blob is its target, a submodule has none: `moon` reads neither as an index file.
  const onOther = (path: string, mode: string) => {
    if (!looksLikeIndex(path)) return;
    const what = mode === '120000' ? 'a symlink' : mode === '160000' ? 'a submodule' : `mode ${mode}`;
    warn?.(`ignoring ${quoteForLog(path)} (${what}, not a file)`);
  };
  for (const [path, oid] of await listTree(gitDir, commit, onOther)) {
    const module = moduleFromIndexPath(path);
    if (module) files.set(module, oid);
    else if (looksLikeIndex(path)) warn?.(`ignoring ${quoteForLog(path)} (not a valid module name)`);
  }
  const blobs = await readBlobs(gitDir, files.values());
  const modules = new Map<string, Map<string, IndexEntry>>();
  // `serve` reads catalogs while it answers requests: a huge upstream index must not stall it.
  const turn = eventLoopTurns();
  for (const [module, oid] of files) {
    // A few bad lines of a file are named, the rest counted: a file of 100k junk lines gives
    // four messages, and the other files' problems are still named after it.
    let bad = 0;
    const text = blobs.get(oid)?.toString('utf8') ?? '';
    const entries = await parseIndexFileInTurns(module, text, turn, (message) => {
      if (++bad <= LINES_NAMED_PER_FILE) warn?.(message);
    });
    if (bad > LINES_NAMED_PER_FILE) warn?.(`${module}: ${bad - LINES_NAMED_PER_FILE} more lines skipped`);
    if (entries.size > 0) modules.set(module, entries);
  }
  return { source, commit, modules };
}

/**
 * One module's part of a source index at `commit` (a catalog of that module alone, empty when
 * the source does not list it): what a publish or yank needs, without reading the other files.
 */
export async function readModuleCatalog(
  source: string,
  gitDir: string,
  commit: string,
  module: string,
  warn?: IndexWarning,
): Promise<SourceCatalog> {
  const modules = new Map<string, Map<string, IndexEntry>>();
  let text: string;
  try {
    const { stdout } = await runGit([
      '--git-dir',
      gitDir,
      'cat-file',
      'blob',
      `${commit}:${indexPathForModule(module)}`,
    ]);
    text = stdout.toString('utf8');
  } catch {
    return { source, commit, modules }; // the file does not exist at that commit
  }
  const entries = parseIndexFile(module, text, warn);
  if (entries.size > 0) modules.set(module, entries);
  return { source, commit, modules };
}

/** Bad lines named per index file (see readSourceCatalog). */
const LINES_NAMED_PER_FILE = 3;
/** Skipped entries one warning names; the rest are only counted. */
const NAMED_IN_WARNING = 20;

/**
 * The one warning for everything skipped in a source's index (lines `moon` would skip too, files
 * that cannot be a module's index), naming them so an operator can find them: up to
 * NAMED_IN_WARNING, so that a hostile index still gives a one-line warning.
 */
export function skippedEntriesWarning(source: string, skipped: string[]): string {
  const named = skipped.slice(0, NAMED_IN_WARNING).join('; ');
  const more = skipped.length > NAMED_IN_WARNING ? `; and ${skipped.length - NAMED_IN_WARNING} more` : '';
  return `source "${source}": index entries skipped: ${named}${more}`;
}
