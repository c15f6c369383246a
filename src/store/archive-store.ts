import { normalizeChecksum } from '../core/checksum.js';
import { RegistryError } from '../core/errors.js';
import { isValidModuleName } from '../core/module-name.js';
import { isValidVersion } from '../core/version.js';
import type { BlobRead, BlobStore } from './blob/blob-store.js';
import { withLocalCopy } from './blob/local-copy.js';

/** Where archives live below the blob store's root: `packages/<module>/<version>/<sha256>.zip`. */
export const ARCHIVE_FOLDER = 'packages/';

/**
 * Verified archives, addressed by module, version and checksum. Keying by checksum lets two
 * sources' different bytes for the same module@version live side by side (a patched release
 * next to the public one), so switching priorities or sources never needs a download twice.
 *
 * An archive only ever appears here whole and after its checksum was verified (a rename on
 * disk, a single PUT in a bucket), so presence means verified.
 */
export interface ArchiveStore {
  readonly blobs: BlobStore;
  keyFor(module: string, version: string, checksum: string): string;
  /** For messages: the file, or the bucket URL of the object. */
  locate(module: string, version: string, checksum: string): string;
  has(module: string, version: string, checksum: string): Promise<boolean>;
  size(module: string, version: string, checksum: string): Promise<number | undefined>;
  read(module: string, version: string, checksum: string): Promise<BlobRead | undefined>;
  /** Makes a local file whose checksum the caller verified the archive; consumes the file. */
  put(module: string, version: string, checksum: string, verifiedFile: string): Promise<void>;
  putBytes(module: string, version: string, checksum: string, verified: Uint8Array): Promise<void>;
  /**
   * Runs `use` with a local file of the archive, for readers that need random access (zip
   * directories): the stored file itself on disk, a temp copy in `tmpDir` from a bucket.
   * `use` gets undefined when the archive is not stored.
   */
  withLocalFile<T>(
    archive: { module: string; version: string; checksum: string },
    tmpDir: string,
    use: (path: string | undefined) => Promise<T>,
  ): Promise<T>;
}

/** The store's key of an archive; refuses names that could not have come from a valid line. */
export function archiveKey(module: string, version: string, checksum: string): string {
  // Names reach here from upstream indexes and URLs: check them again.
  const sum = normalizeChecksum(checksum);
  if (!isValidModuleName(module) || !isValidVersion(version) || sum === undefined) {
    throw new RegistryError('USAGE', `refusing archive path for ${module}@${version}`);
  }
  return `${ARCHIVE_FOLDER}${module}/${version}/${sum}.zip`;
}

export function createArchiveStore(blobs: BlobStore): ArchiveStore {
  const size = async (module: string, version: string, checksum: string) =>
    (await blobs.stat(archiveKey(module, version, checksum)))?.size;
  const locate = (module: string, version: string, checksum: string) =>
    blobs.locate(archiveKey(module, version, checksum));
  return {
    blobs,
    keyFor: archiveKey,
    locate,
    size,
    has: async (module, version, checksum) => (await size(module, version, checksum)) !== undefined,
    read: (module, version, checksum) => blobs.read(archiveKey(module, version, checksum)),
    put: (module, version, checksum, file) => blobs.putFile(archiveKey(module, version, checksum), file),
    putBytes: (module, version, checksum, bytes) =>
      blobs.putBytes(archiveKey(module, version, checksum), bytes),
    withLocalFile: ({ module, version, checksum }, tmpDir, use) =>
      withLocalCopy(blobs, archiveKey(module, version, checksum), tmpDir, use),
  };
}
