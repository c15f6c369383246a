import { z } from 'zod';
import {
  type AssetPackage,
  type AssetRef,
  assetStoreSegments,
  describeAssetPackage,
  isValidAssetPackage,
  versionStoreSegments,
} from '../core/asset-path.js';
import { RegistryError } from '../core/errors.js';
import type { BlobInfo, BlobRead, BlobStore } from './blob/blob-store.js';
import { readBlobText } from './blob/local-copy.js';

/** Where prebuilt wasm lives below the blob store's root (data/assets on disk). */
export const ASSET_FOLDER = 'assets/';

/**
 * Prebuilt wasm tools, as `moon` asks for them: `assets/<module>/<version>/<package path>/<name>.wasm`
 * and `<name>.wasm.sha256`, in data/ or the bucket. The wasm only ever appears after its sha256
 * matched its `.sha256`, and the `.sha256` after it: a package whose two blobs are both there
 * is verified.
 *
 * Each version folder may hold `.assets.json`, what `mirror` learnt of the version: which of its
 * executable packages the source has no asset for, and whether every package was settled (then
 * the next mirror does not look again). A leading dot keeps it apart from package folders.
 */
export interface AssetStore {
  readonly blobs: BlobStore;
  keyFor(ref: AssetRef): string;
  /** For messages: the file, or the object's URL. */
  locate(ref: AssetRef): string;
  /** Both blobs of the package's asset are stored. */
  has(pkg: AssetPackage): Promise<boolean>;
  read(ref: AssetRef): Promise<BlobRead | undefined>;
  /** Stores a verified local file (consumed). */
  put(ref: AssetRef, verifiedFile: string): Promise<void>;
  putBytes(ref: AssetRef, bytes: Uint8Array): Promise<void>;
  remove(ref: AssetRef): Promise<void>;
  /** Every blob in a version's folder (`.assets.json` included), keys relative to the store. */
  listVersion(module: string, version: string): AsyncIterable<BlobInfo>;
  readRecord(module: string, version: string): Promise<AssetRecord | undefined>;
  writeRecord(module: string, version: string, record: AssetRecord): Promise<void>;
  /**
   * Versions whose archive has no executable package, by `module@version`, with the checksum of
   * the archive that was read: most versions, kept in one blob (`assets/.no-executables.json`)
   * rather than a folder each, so that assets/ holds folders only for real tools.
   */
  readWithoutExecutables(): Promise<Map<string, string>>;
  writeWithoutExecutables(versions: ReadonlyMap<string, string>): Promise<void>;
}

const RecordSchema = z.object({
  /** Every executable package is stored or known absent. */
  complete: z.boolean(),
  /** Package paths (`a/b`, `` for the root) the source answered 404 for. */
  absent: z.array(z.string()),
  checked_at: z.string(),
});
export type AssetRecord = z.infer<typeof RecordSchema>;

const RECORD_FILE = '.assets.json';
const NO_EXECUTABLES_KEY = `${ASSET_FOLDER}.no-executables.json`;
const NoExecutablesSchema = z.record(z.string(), z.string());

/** A package's blob key; names reach here from archives, indexes and URLs: checked again. */
export function assetKey(ref: AssetRef): string {
  if (!isValidAssetPackage(ref)) {
    throw new RegistryError('USAGE', `refusing asset path for ${describeAssetPackage(ref)}`);
  }
  return ASSET_FOLDER + assetStoreSegments(ref).join('/');
}

/** The folder of a version's assets, ending in `/`. */
export function assetVersionFolder(module: string, version: string): string {
  const pkg = { module, version, packagePath: [] };
  if (!isValidAssetPackage(pkg))
    throw new RegistryError('USAGE', `refusing asset path for ${module}@${version}`);
  return `${ASSET_FOLDER}${versionStoreSegments(pkg).join('/')}/`;
}

export function createAssetStore(blobs: BlobStore): AssetStore {
  const readText = (key: string) => readBlobText(blobs, key);
  const recordKey = (module: string, version: string) =>
    `${assetVersionFolder(module, version)}${RECORD_FILE}`;
  return {
    blobs,
    keyFor: assetKey,
    locate: (ref) => blobs.locate(assetKey(ref)),
    has: async (pkg) =>
      (await blobs.stat(assetKey({ ...pkg, kind: 'wasm' }))) !== undefined &&
      (await blobs.stat(assetKey({ ...pkg, kind: 'sha256' }))) !== undefined,
    read: (ref) => blobs.read(assetKey(ref)),
    put: (ref, file) => blobs.putFile(assetKey(ref), file),
    putBytes: (ref, bytes) => blobs.putBytes(assetKey(ref), bytes),
    remove: (ref) => blobs.delete(assetKey(ref)),
    listVersion: (module, version) => blobs.list(assetVersionFolder(module, version)),
    readRecord: async (module, version) => {
      const text = await readText(recordKey(module, version));
      if (text === undefined) return undefined;
      try {
        const parsed = RecordSchema.safeParse(JSON.parse(text));
        return parsed.success ? parsed.data : undefined;
      } catch {
        return undefined; // a damaged record only means asking the source again
      }
    },
    writeRecord: async (module, version, record) => {
      await blobs.putBytes(recordKey(module, version), Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
    },
    readWithoutExecutables: async () => {
      const text = await readText(NO_EXECUTABLES_KEY);
      try {
        const parsed = text === undefined ? undefined : NoExecutablesSchema.safeParse(JSON.parse(text));
        return new Map(parsed?.success ? Object.entries(parsed.data) : []);
      } catch {
        return new Map(); // a damaged file only means reading the archives again
      }
    },
    writeWithoutExecutables: async (versions) => {
      const sorted = Object.fromEntries([...versions].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      await blobs.putBytes(NO_EXECUTABLES_KEY, Buffer.from(`${JSON.stringify(sorted, null, 1)}\n`));
    },
  };
}

/** How a package path is written in `.assets.json`. */
export function packageKey(pkg: AssetPackage): string {
  return pkg.packagePath.join('/');
}
