import pLimit from 'p-limit';
import {
  type AssetPackage,
  type AssetRef,
  assetFileName,
  describeAssetPackage,
  isValidAssetPackage,
  parseSha256Text,
} from '../core/asset-path.js';
import { describeError } from '../core/errors.js';
import type { IndexEntry } from '../index/index-file.js';
import type { MergedCatalog } from '../index/merged-catalog.js';
import { hashBlob } from '../store/archive-scan.js';
import { type AssetStore, assetVersionFolder, packageKey } from '../store/asset-store.js';
import { readBlobText } from '../store/blob/local-copy.js';
import { fetchAsset } from '../upstream/asset-fetch.js';
import { createSourceAgents } from '../upstream/http-agent.js';
import type { UpstreamSource } from '../upstream/upstream-source.js';
import type { Registry } from './registry.js';
import { downloadLimits } from './source-indexes.js';

/** A stored prebuilt wasm whose pair of files does not check out. */
export interface AssetProblem {
  pkg: AssetPackage;
  /** The wasm's path. */
  path: string;
  detail: string;
}

export interface AssetCheck {
  /** Packages whose asset files were looked at. */
  checked: number;
  bytes: number;
  problems: AssetProblem[];
}

const HASH_CONCURRENCY = 8;

/**
 * Checks the prebuilt wasm stored for each served version: each `<name>.wasm` must hash to the
 * hex its `<name>.wasm.sha256` names, and neither may be there without the other. Folders of
 * versions not served are gc's business, not looked at here.
 */
export async function checkAssets(
  registry: Registry,
  served: ReadonlyMap<string, ReadonlyMap<string, IndexEntry>>,
): Promise<AssetCheck> {
  const store = registry.assets;
  const packages: AssetPackage[] = [];
  for (const [module, versions] of served) {
    for (const version of versions.keys()) {
      packages.push(...(await storedPackages(store, module, version)));
    }
  }
  const check: AssetCheck = { checked: packages.length, bytes: 0, problems: [] };
  const limit = pLimit(HASH_CONCURRENCY);
  await Promise.all(
    packages.map((pkg) =>
      limit(async () => {
        const problem = await checkPackage(store, pkg, (bytes) => {
          check.bytes += bytes;
        });
        if (problem)
          check.problems.push({ pkg, path: store.locate({ ...pkg, kind: 'wasm' }), detail: problem });
      }),
    ),
  );
  check.problems.sort((a, b) => describeAssetPackage(a.pkg).localeCompare(describeAssetPackage(b.pkg)));
  return check;
}

/** Packages in a version's folder with a `.wasm` or `.wasm.sha256` named as moon asks. */
async function storedPackages(store: AssetStore, module: string, version: string): Promise<AssetPackage[]> {
  const found = new Map<string, AssetPackage>();
  const folder = assetVersionFolder(module, version);
  for await (const blob of store.listVersion(module, version)) {
    const segments = blob.key.slice(folder.length).split('/');
    const name = segments.at(-1) as string;
    if (name.startsWith('.')) continue; // .assets.json, temp files
    const pkg: AssetPackage = { module, version, packagePath: segments.slice(0, -1) };
    if (!isValidAssetPackage(pkg)) continue;
    if (name === assetFileName(pkg, 'wasm') || name === assetFileName(pkg, 'sha256'))
      found.set(packageKey(pkg), pkg);
  }
  return [...found.values()];
}

async function checkPackage(
  store: AssetStore,
  pkg: AssetPackage,
  counted: (bytes: number) => void,
): Promise<string | undefined> {
  const text = await readText(store, { ...pkg, kind: 'sha256' });
  let hashed: { checksum: string; bytes: number } | undefined;
  try {
    hashed = await hashBlob(store.blobs, store.keyFor({ ...pkg, kind: 'wasm' }));
  } catch (error) {
    return `the wasm cannot be read: ${describeError(error)}`;
  }
  if (!hashed) return 'a .sha256 without its wasm';
  counted(hashed.bytes);
  if (text === undefined) return 'a wasm without its .sha256';
  const expected = parseSha256Text(text, assetFileName(pkg, 'wasm'));
  if (expected === undefined) return 'its .sha256 is not a sha256 line for this file';
  if (expected !== hashed.checksum) {
    return `the wasm hashes to ${hashed.checksum.slice(0, 12)}…, its .sha256 says ${expected.slice(0, 12)}…`;
  }
  return undefined;
}

/** What --repair did about one asset: fetched again, or only deleted (with why). */
export interface AssetRepair {
  fetched: boolean;
  detail: string;
  /** The bad files could not even be deleted. */
  left: boolean;
}

/**
 * Deletes both files of each bad asset (bad bytes are never served again), then fetches it
 * again from the source whose line is served, as `mirror` would. A version whose asset could
 * not be fetched is marked unsettled, so the next `mirror` tries again.
 */
export async function repairAssets(
  registry: Registry,
  problems: AssetProblem[],
  served: ReadonlyMap<string, ReadonlyMap<string, IndexEntry>>,
  merged: MergedCatalog,
  upstreams: ReadonlyMap<string, UpstreamSource>,
  tmpDir: string,
): Promise<Map<AssetProblem, AssetRepair>> {
  const store = registry.assets;
  const { config } = registry;
  const agents = createSourceAgents(config.mirror.concurrency);
  const limit = pLimit(config.mirror.concurrency);
  const outcomes = new Map<AssetProblem, AssetRepair>();
  try {
    await Promise.all(
      problems.map((problem) =>
        limit(async () => {
          const { pkg } = problem;
          try {
            await store.remove({ ...pkg, kind: 'sha256' });
            await store.remove({ ...pkg, kind: 'wasm' });
          } catch (error) {
            outcomes.set(problem, {
              fetched: false,
              left: true,
              detail: `could not be deleted: ${describeError(error)}`,
            });
            return;
          }
          const entry = served.get(pkg.module)?.get(pkg.version);
          const winner = entry && merged.sourcesWithChecksum(pkg.module, pkg.version, entry.checksum)[0];
          const upstream = winner && upstreams.get(winner.source);
          if (!upstream) {
            outcomes.set(problem, {
              fetched: false,
              left: false,
              detail: 'deleted; no enabled source to fetch it from',
            });
            return;
          }
          try {
            const fetched = await fetchAsset(upstream, pkg, {
              store,
              tmpDir,
              dispatcher: agents.dispatcherFor(upstream),
              limits: downloadLimits(config),
              retries: config.mirror.retries,
            });
            outcomes.set(
              problem,
              fetched.result === 'stored'
                ? { fetched: true, left: false, detail: `fetched again from "${upstream.name}"` }
                : {
                    fetched: false,
                    left: false,
                    detail: `deleted; "${upstream.name}" has no prebuilt wasm for it now`,
                  },
            );
          } catch (error) {
            await markUnsettled(store, pkg);
            outcomes.set(problem, {
              fetched: false,
              left: false,
              detail: `deleted; fetching it again failed (the next mirror tries again): ${upstream.redact(describeError(error))}`,
            });
          }
        }),
      ),
    );
  } finally {
    await agents.close();
  }
  return outcomes;
}

function readText(store: AssetStore, ref: AssetRef): Promise<string | undefined> {
  return readBlobText(store.blobs, store.keyFor(ref)).catch(() => undefined);
}

async function markUnsettled(store: AssetStore, pkg: AssetPackage): Promise<void> {
  const record = await store.readRecord(pkg.module, pkg.version);
  await store
    .writeRecord(pkg.module, pkg.version, {
      complete: false,
      absent: record?.absent ?? [],
      checked_at: new Date().toISOString(),
    })
    .catch(() => undefined); // only costs the next mirror a look at the archive
}
