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
 * without a leading `v`; with `refPattern`, the tags that glob matches, whose version is the
 * semver version their name ends in (`json-v1.2.0` in a repository of several modules gives
 * 1.2.0). Tags of trees or blobs are no release.
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
    const plain = tag.replace(/^v/, '');
    if (matches ? !matches(tag) : semver.valid(plain) !== plain) continue;
    const version = matches ? versionInTag(tag) : plain;
    if (version === undefined) {
      skipped.push({ tag, reason: 'its name ends in no semver version' });
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

/** The longest tail of `tag` that is a semver version, after `v`, `-`, `/`, `_` or `@` (or the whole name). */
export function versionInTag(tag: string): string | undefined {
  for (let i = 0; i < tag.length; i++) {
    if (i > 0 && !'v-/_@'.includes(tag[i - 1] as string)) continue;
    const tail = tag.slice(i);
    if (/^\d/.test(tail) && semver.valid(tail) === tail) return tail;
  }
  return undefined;
}
