import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type AssetPackage,
  type AssetRef,
  assetFileName,
  describeAssetPackage,
  isValidAssetPackage,
  parseSha256Text,
} from '../core/asset-path.js';
import { RegistryError } from '../core/errors.js';
import type { SourceCatalog } from '../index/source-catalog.js';
import { hashBlob } from '../store/archive-scan.js';
import type { AssetStore } from '../store/asset-store.js';
import type { ManifestFile } from './bundle-manifest.js';

/** `<64 hex>  <file name>`: a name of a few hundred bytes at most. */
const MAX_SHA256_TEXT = 4096;

/** One package's prebuilt wasm carried by a bundle, both files unpacked in the staging folder. */
export interface BundledAsset {
  pkg: AssetPackage;
  wasm: string;
  sha256: string;
  /** The wasm's sha256, checked against the manifest while unpacking. */
  wasmSha256: string;
}

/**
 * Names the bundle's asset files (`assets/<module>/<version>/<package path>/<file>`) by the
 * versions its own index serves, and checks each package as a pull-through would: both files
 * there, the wasm's sha256 what its `.sha256` says. Module names nest, so a path is read
 * against the catalog rather than guessed. A bundle carrying an asset for a version it does not
 * serve (another module's tool, say) is refused: an asset is only ever a served version's.
 */
export async function checkBundledAssets(
  files: readonly ManifestFile[],
  catalog: SourceCatalog,
  staging: string,
  bundleName: string,
): Promise<BundledAsset[]> {
  const refuse = (reason: string) =>
    new RegistryError('INVALID', `${bundleName}: ${reason}`, {
      hint: 'export it again from a registry that serves the version; nothing was changed here',
    });
  const packages = new Map<string, { pkg: AssetPackage; wasm?: ManifestFile; sha256?: ManifestFile }>();
  for (const file of files) {
    if (!file.path.startsWith('assets/')) continue;
    const ref = assetRefIn(file.path.slice('assets/'.length), catalog);
    if (!ref) throw refuse(`${file.path} is no asset of a version its index serves`);
    const key = describeAssetPackage(ref);
    const entry = packages.get(key) ?? {
      pkg: { module: ref.module, version: ref.version, packagePath: ref.packagePath },
    };
    entry[ref.kind] = file;
    packages.set(key, entry);
  }
  const assets: BundledAsset[] = [];
  for (const [key, { pkg, wasm, sha256 }] of packages) {
    if (!wasm || !sha256) throw refuse(`the asset of ${key} lacks its ${wasm ? '.sha256' : '.wasm'}`);
    if (sha256.size > MAX_SHA256_TEXT) throw refuse(`${sha256.path} is no sha256 text`);
    const text = await readFile(join(staging, sha256.path), 'utf8');
    const expected = parseSha256Text(text, assetFileName(pkg, 'wasm'));
    // The wasm's own sha256 was checked against the manifest while unpacking.
    if (expected !== wasm.sha256) throw refuse(`the wasm of ${key} does not match its .sha256`);
    assets.push({
      pkg,
      wasm: join(staging, wasm.path),
      sha256: join(staging, sha256.path),
      wasmSha256: wasm.sha256,
    });
  }
  return assets;
}

/**
 * Moves checked assets into the store, the wasm before its `.sha256` (the store's rule: both
 * there means verified). A package stored here already keeps its files: they were verified
 * when they came, and a bundle never replaces what this registry serves. Returns the packages
 * moved and those kept with other bytes than the bundle's (for a warning).
 */
export async function installBundledAssets(
  store: AssetStore,
  assets: readonly BundledAsset[],
): Promise<{ installed: number; keptDiffering: string[] }> {
  let installed = 0;
  const keptDiffering: string[] = [];
  for (const asset of assets) {
    const wasm = { ...asset.pkg, kind: 'wasm' } as const;
    if (await store.has(asset.pkg)) {
      if ((await hashBlob(store.blobs, store.keyFor(wasm)))?.checksum !== asset.wasmSha256)
        keptDiffering.push(describeAssetPackage(asset.pkg));
      continue;
    }
    await store.put(wasm, asset.wasm);
    await store.put({ ...asset.pkg, kind: 'sha256' }, asset.sha256);
    installed++;
  }
  return { installed, keptDiffering };
}

/** `<module...>/<version>/<package path...>/<file>` as an asset of a version in `catalog`. */
function assetRefIn(rel: string, catalog: SourceCatalog): AssetRef | undefined {
  const parts = rel.split('/');
  for (let at = 2; at < parts.length - 1; at++) {
    const module = parts.slice(0, at).join('/');
    const version = parts[at] as string;
    if (!catalog.modules.get(module)?.has(version)) continue;
    const packagePath = parts.slice(at + 1, -1);
    const pkg = { module, version, packagePath };
    if (!isValidAssetPackage(pkg)) continue;
    const name = parts.at(-1);
    for (const kind of ['wasm', 'sha256'] as const) {
      if (name === assetFileName(pkg, kind)) return { ...pkg, kind };
    }
  }
  return undefined;
}
