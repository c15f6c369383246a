import { RegistryError } from './errors.js';

/**
 * Module names: `owner/name`, possibly deeper (`tonyfettes/js/test`), possibly non-ASCII
 * (`illusory0x0/🐫`). Names come from upstream index paths and from URLs, so this is the one
 * place that decides what may become a path segment on our disk.
 */

// No separators, no control characters, no leading dot (rules out `.`, `..`, `.git`).
const FORBIDDEN_IN_SEGMENT = /[/\\"%\p{Cc}]/u;

export function isValidSegment(segment: string): boolean {
  return (
    segment.length > 0 &&
    segment.length <= 200 &&
    !segment.startsWith('.') &&
    !FORBIDDEN_IN_SEGMENT.test(segment)
  );
}

export function isValidModuleName(name: string): boolean {
  const segments = name.split('/');
  return segments.length >= 2 && segments.every(isValidSegment);
}

/** Returns the name unchanged if valid, or throws a USAGE error naming it. */
export function parseModuleName(name: string): string {
  if (!isValidModuleName(name)) {
    throw new RegistryError('USAGE', `invalid module name "${name}"`, {
      hint: 'a module name looks like owner/name (nested names such as owner/group/name are allowed)',
    });
  }
  return name;
}

const INDEX_PREFIX = 'user/';
const INDEX_SUFFIX = '.index';

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
