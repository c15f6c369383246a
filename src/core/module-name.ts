/**
 * Module names: `owner/name`, possibly deeper (`tonyfettes/js/test`), possibly non-ASCII
 * (`illusory0x0/🐫`). Names come from upstream index paths and from URLs, so this is the one
 * place that decides what may become a path segment on our disk.
 */

import { portableSegmentProblem } from './portable-path.js';

const INDEX_PREFIX = 'user/';
const INDEX_SUFFIX = '.index';

// No separators, no control characters, no leading dot (rules out `.`, `..`, `.git`).
const FORBIDDEN_IN_SEGMENT = /[/\\"%\p{Cc}]/u;

/**
 * Every segment becomes a file or folder name, in data/packages and in each client's checkout of
 * the index (`<last segment>.index`), and the whole name part of a path there. File systems
 * count bytes (255 per name, PATH_MAX 4096 per path on Linux), not UTF-16 units: an upstream
 * line naming `owner/` + 100 camels (400 bytes) passed a 200-unit limit, could never be stored,
 * and in pull-through mode broke `git clone` of the served index for every client ("File name
 * too long"). Real names are far shorter (the longest in mooncakes.io is 43 bytes).
 */
const MAX_SEGMENT_BYTES = 200;
const MAX_NAME_BYTES = 512;

export function isValidSegment(segment: string): boolean {
  return (
    segment.length > 0 &&
    Buffer.byteLength(segment, 'utf8') <= MAX_SEGMENT_BYTES &&
    !segment.startsWith('.') &&
    !FORBIDDEN_IN_SEGMENT.test(segment)
  );
}

/**
 * A name this registry lets someone publish: stricter than what it accepts from upstreams.
 * Each segment is ASCII letters, digits, `_`, `.` and `-` (no spaces: `moon` form-encodes them
 * as `+`, which nothing decodes back), starts with a letter, digit or `_`, and is a portable
 * file name (no `git~1`, no Windows device names, no trailing dot).
 */
export function isPublishableModuleName(name: string): boolean {
  return (
    isValidModuleName(name) &&
    name
      .split('/')
      .every(
        (segment) =>
          /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(segment) && portableSegmentProblem(segment) === undefined,
      )
  );
}

export function isValidModuleName(name: string): boolean {
  const segments = name.split('/');
  return (
    segments.length >= 2 &&
    Buffer.byteLength(name, 'utf8') <= MAX_NAME_BYTES &&
    segments.every(isValidSegment) &&
    // `a/b.index/c` would need `user/a/b.index` as a folder while `a/b` needs it as a file.
    segments.slice(0, -1).every((segment) => !segment.endsWith(INDEX_SUFFIX))
  );
}

/** `user/tonyfettes/js/test.index` -> `tonyfettes/js/test`; undefined for anything else. */
export function moduleFromIndexPath(path: string): string | undefined {
  if (!path.startsWith(INDEX_PREFIX) || !path.endsWith(INDEX_SUFFIX)) return undefined;
  const name = path.slice(INDEX_PREFIX.length, -INDEX_SUFFIX.length);
  return isValidModuleName(name) ? name : undefined;
}

export function indexPathForModule(module: string): string {
  return `${INDEX_PREFIX}${module}${INDEX_SUFFIX}`;
}

export function moduleKey(module: string, version: string): string {
  return `${module}@${version}`;
}
