import { createHash } from 'node:crypto';
import { RegistryError } from '../core/errors.js';
import { runGit } from './run-git.js';

/** Reading trees and blobs of a local repository with plumbing commands, one process each. */

export async function resolveCommit(gitDir: string, ref: string): Promise<string | undefined> {
  try {
    const { stdout } = await runGit([
      '--git-dir',
      gitDir,
      'rev-parse',
      '--verify',
      '--quiet',
      `${ref}^{commit}`,
    ]);
    return stdout.toString('utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Modes of regular files in a tree; 120000 (a symlink) is a blob too, 160000 a submodule. */
const FILE_MODES = new Set(['100644', '100755']);

/**
 * Every regular file in the commit's tree: path -> blob id. Any other entry (a symlink, whose
 * blob is only its target, or a submodule) is no file and is passed to `onOther` instead.
 */
export async function listTree(
  gitDir: string,
  commit: string,
  onOther?: (path: string, mode: string) => void,
): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const [path, file] of await listTreeSizes(gitDir, commit, onOther)) files.set(path, file.oid);
  return files;
}

/** listTree with each file's size, so that what a tree would cost is known before reading it. */
export async function listTreeSizes(
  gitDir: string,
  commit: string,
  onOther?: (path: string, mode: string) => void,
): Promise<Map<string, { oid: string; size: number }>> {
  const { stdout } = await runGit(['--git-dir', gitDir, 'ls-tree', '-r', '-z', '-l', '--full-tree', commit]);
  const files = new Map<string, { oid: string; size: number }>();
  for (const record of stdout.toString('utf8').split('\0')) {
    if (!record) continue;
    // "<mode> SP <type> SP <oid> SP+ <size> TAB <path>" (size is "-" for a submodule)
    const tab = record.indexOf('\t');
    const [mode = '', type, oid, size] = record.slice(0, tab).split(/ +/);
    const path = record.slice(tab + 1);
    if (type === 'blob' && oid && FILE_MODES.has(mode)) files.set(path, { oid, size: Number(size) });
    else onOther?.(path, mode);
  }
  return files;
}

/** Contents of many blobs through one `git cat-file --batch`. */
export async function readBlobs(gitDir: string, oids: Iterable<string>): Promise<Map<string, Buffer>> {
  const wanted = [...new Set(oids)];
  const blobs = new Map<string, Buffer>();
  if (wanted.length === 0) return blobs;
  const { stdout } = await runGit(['--git-dir', gitDir, 'cat-file', '--batch'], {
    input: `${wanted.join('\n')}\n`,
  });
  let offset = 0;
  while (offset < stdout.length) {
    const eol = stdout.indexOf(0x0a, offset);
    const header = stdout.toString('utf8', offset, eol).split(' ');
    const [oid, type, size] = header;
    if (!oid || type !== 'blob' || size === undefined) {
      throw new RegistryError('GIT', `cannot read object ${oid ?? '?'} from ${gitDir}: ${header.join(' ')}`);
    }
    const start = eol + 1;
    const end = start + Number(size);
    blobs.set(oid, stdout.subarray(start, end));
    offset = end + 1; // content is followed by a newline
  }
  return blobs;
}

/** The id git gives a blob with these bytes, so unchanged files can be found without writing. */
export function gitBlobId(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}
