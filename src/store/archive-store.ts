import { stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { normalizeChecksum } from '../core/checksum.js';
import { RegistryError } from '../core/errors.js';
import { isValidModuleName } from '../core/module-name.js';
import { isValidVersion } from '../core/version.js';

/**
 * Verified archives on disk, addressed by module, version and checksum:
 * `<root>/<module>/<version>/<sha256>.zip`. Keying by checksum lets two sources' different
 * bytes for the same module@version live side by side (a patched release next to the public
 * one), so switching priorities or sources never needs a download twice.
 *
 * A file only ever appears here by rename after its checksum was verified, so presence means
 * verified.
 */
export interface ArchiveStore {
  readonly root: string;
  pathFor(module: string, version: string, checksum: string): string;
  has(module: string, version: string, checksum: string): Promise<boolean>;
  size(module: string, version: string, checksum: string): Promise<number | undefined>;
}

export function createArchiveStore(root: string): ArchiveStore {
  const base = resolve(root);
  const pathFor = (module: string, version: string, checksum: string): string => {
    // Names reach here from upstream indexes and URLs: check them again, then check the result.
    const sum = normalizeChecksum(checksum);
    if (!isValidModuleName(module) || !isValidVersion(version) || sum === undefined) {
      throw new RegistryError('USAGE', `refusing archive path for ${module}@${version}`);
    }
    const path = join(base, ...module.split('/'), version, `${sum}.zip`);
    const rel = relative(base, path);
    if (rel.startsWith('..') || rel.startsWith(sep)) {
      throw new RegistryError('USAGE', `refusing archive path outside the store for ${module}@${version}`);
    }
    return path;
  };
  const size = async (module: string, version: string, checksum: string) => {
    try {
      const info = await stat(pathFor(module, version, checksum));
      return info.isFile() ? info.size : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    root: base,
    pathFor,
    size,
    has: async (module, version, checksum) => (await size(module, version, checksum)) !== undefined,
  };
}
