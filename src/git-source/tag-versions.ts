import picomatch from 'picomatch';
import semver from 'semver';
import { runGit } from '../git/run-git.js';

/** A release tag of a git source's repository, peeled to its commit. */
export interface ReleaseTag {
  tag: string;
  /** The version it claims: the tag without a leading `v`. */
  version: string;
  commit: string;
  /** The commit's committer time: the version's `created_at`. */
  committedAt: Date;
}

export interface TagSelection {
  tags: ReleaseTag[];
  /** Tags the pattern matched whose name is no semver version, each said once. */
  skipped: Array<{ tag: string; reason: string }>;
}

/**
 * The tags of `gitDir` that are releases: by default every tag that is a semver version with or
 * without a leading `v`; with `refPattern`, the tags that glob matches (their version is still
 * the name without a leading `v`, which must be semver). Tags of trees or blobs are no release.
 * Sorted by version, then tag name (`v1.0.0` before `1.0.0` would be arbitrary otherwise).
 */
export async function listReleaseTags(gitDir: string, refPattern?: string): Promise<TagSelection> {
  const { stdout } = await runGit([
    '--git-dir',
    gitDir,
    'for-each-ref',
    '--format=%(refname:strip=2)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)%00%(committerdate:unix)%00%(*committerdate:unix)',
    'refs/tags',
  ]);
  const matches = refPattern ? picomatch(refPattern, { dot: true }) : undefined;
  const tags: ReleaseTag[] = [];
  const skipped: TagSelection['skipped'] = [];
  for (const line of stdout.toString('utf8').split('\n')) {
    if (!line) continue;
    const [tag = '', type, oid = '', peeledType, peeled = '', time = '', peeledTime = ''] = line.split('\0');
    const version = tag.replace(/^v/, '');
    const isSemver = semver.valid(version) === version;
    if (matches ? !matches(tag) : !isSemver) continue;
    if (!isSemver) {
      skipped.push({ tag, reason: `"${version}" is no semver version` });
      continue;
    }
    const commit = type === 'commit' ? oid : peeledType === 'commit' ? peeled : undefined;
    if (!commit) {
      skipped.push({ tag, reason: 'it names no commit' });
      continue;
    }
    const seconds = Number(type === 'commit' ? time : peeledTime);
    tags.push({ tag, version, commit, committedAt: new Date(seconds * 1000) });
  }
  tags.sort((a, b) => semver.compare(a.version, b.version) || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  return { tags, skipped };
}
