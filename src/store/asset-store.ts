import { readFile, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
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
import { writeFileAtomic } from '../fs/atomic-write.js';

/**
 * Prebuilt wasm tools on disk (data/assets), as `moon` asks for them:
 * `<module>/<version>/<package path>/<name>.wasm` and `<name>.wasm.sha256`. The wasm only ever
 * appears by rename after its sha256 matched its `.sha256`, and the `.sha256` after it: a
 * package whose two files are both there is verified.
 *
 * Each version folder may hold `.assets.json`, what `mirror` learnt of the version: which of its
 * executable packages the source has no asset for, and whether every package was settled (then
 * the next mirror does not look again). A leading dot keeps it apart from package folders.
 */
export interface AssetStore {
  readonly root: string;
  pathFor(ref: AssetRef): string;
  /** Both files of the package's asset are stored. */
  has(pkg: AssetPackage): Promise<boolean>;
  readRecord(module: string, version: string): Promise<AssetRecord | undefined>;
  writeRecord(module: string, version: string, record: AssetRecord): Promise<void>;
  /**
   * Versions whose archive has no executable package, by `module@version`, with the checksum of
   * the archive that was read: most versions, kept in one file (`.no-executables.json` at the
   * root) rather than a folder each, so that data/assets holds folders only for real tools.
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
const NO_EXECUTABLES_FILE = '.no-executables.json';
const NoExecutablesSchema = z.record(z.string(), z.string());

export function createAssetStore(root: string): AssetStore {
  const base = resolve(root);
  const inside = (segments: string[], what: string): string => {
    const path = join(base, ...segments);
    const rel = relative(base, path);
    if (rel === '' || rel.startsWith('..') || rel.startsWith(sep)) {
      throw new RegistryError('USAGE', `refusing asset path outside data/assets for ${what}`);
    }
    return path;
  };
  const pathFor = (ref: AssetRef): string => {
    // Names reach here from archives, indexes and URLs: check them again, then the result.
    if (!isValidAssetPackage(ref)) {
      throw new RegistryError('USAGE', `refusing asset path for ${describeAssetPackage(ref)}`);
    }
    return inside(assetStoreSegments(ref), describeAssetPackage(ref));
  };
  const recordPath = (module: string, version: string): string => {
    const pkg = { module, version, packagePath: [] };
    if (!isValidAssetPackage(pkg)) {
      throw new RegistryError('USAGE', `refusing asset path for ${module}@${version}`);
    }
    return inside([...versionStoreSegments(pkg), RECORD_FILE], `${module}@${version}`);
  };
  const isFile = async (path: string) => (await stat(path).catch(() => undefined))?.isFile() ?? false;
  return {
    root: base,
    pathFor,
    has: async (pkg) =>
      (await isFile(pathFor({ ...pkg, kind: 'wasm' }))) &&
      (await isFile(pathFor({ ...pkg, kind: 'sha256' }))),
    readRecord: async (module, version) => {
      const text = await readFile(recordPath(module, version), 'utf8').catch(() => undefined);
      if (text === undefined) return undefined;
      try {
        const parsed = RecordSchema.safeParse(JSON.parse(text));
        return parsed.success ? parsed.data : undefined;
      } catch {
        return undefined; // a damaged record only means asking the source again
      }
    },
    writeRecord: async (module, version, record) => {
      await writeFileAtomic(recordPath(module, version), `${JSON.stringify(record, null, 2)}\n`);
    },
    readWithoutExecutables: async () => {
      const text = await readFile(join(base, NO_EXECUTABLES_FILE), 'utf8').catch(() => undefined);
      try {
        const parsed = text === undefined ? undefined : NoExecutablesSchema.safeParse(JSON.parse(text));
        return new Map(parsed?.success ? Object.entries(parsed.data) : []);
      } catch {
        return new Map(); // a damaged file only means reading the archives again
      }
    },
    writeWithoutExecutables: async (versions) => {
      const sorted = Object.fromEntries([...versions].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      await writeFileAtomic(join(base, NO_EXECUTABLES_FILE), `${JSON.stringify(sorted, null, 1)}\n`);
    },
  };
}

/** How a package path is written in `.assets.json`. */
export function packageKey(pkg: AssetPackage): string {
  return pkg.packagePath.join('/');
}
