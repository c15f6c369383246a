/**
 * What a path segment must be to be written on every client's disk: Windows, macOS and Linux
 * checkouts of the index, and unpacked module zips. Git itself refuses to check out some of
 * these (`git~1`, NTFS-reserved names) even on Linux, and one such path in the served index
 * breaks `git clone` and `git pull` for every client.
 */

/** CON, PRN, AUX, NUL, COM0-9, LPT0-9, with or without an extension, in any case. */
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com\d|lpt\d|conin\$|conout\$)(\..*)?$/i;
const WINDOWS_FORBIDDEN = /[<>:"|?*\\\p{Cc}]/u;
/** NTFS short names git protects against (core.protectNTFS): `git~1`, `GIT~2`. */
const GIT_SHORT_NAME = /^git~\d+$/i;

/** Why `segment` cannot be a file or folder name everywhere, or undefined when it can. */
export function portableSegmentProblem(segment: string): string | undefined {
  if (segment === '' || segment === '.' || segment === '..') return 'is empty, "." or ".."';
  if (WINDOWS_FORBIDDEN.test(segment)) return 'contains a character Windows forbids or a control character';
  if (/[. ]$/.test(segment)) return 'ends with a dot or a space';
  if (WINDOWS_RESERVED.test(segment)) return 'is a reserved device name on Windows';
  if (segment.toLowerCase() === '.git' || GIT_SHORT_NAME.test(segment)) return "is git's own folder name";
  return undefined;
}

/**
 * The form two paths collide in on case-insensitive or normalising file systems (macOS,
 * Windows): `A.mbt` and `a.mbt`, or `é` composed and decomposed, are one file there.
 */
export function foldedPath(path: string): string {
  return path.normalize('NFC').toLowerCase();
}
