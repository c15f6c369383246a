import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { RegistryError } from '../core/errors.js';
import { moduleKey } from '../core/module-name.js';
import { tempPathFor } from '../fs/atomic-write.js';
import { pathExists } from '../fs/path-exists.js';
import { processTempDir } from '../fs/temp-dirs.js';
import { createIndexBundle, isAncestor } from '../git/bundle.js';
import { resolveCommit } from '../git/objects.js';
import { readSourceCatalog } from '../index/source-catalog.js';
import { acquireRegistryLock } from '../registry/lock.js';
import { enabledSources, type Registry } from '../registry/registry.js';
import { servedSymbols } from '../registry/symbols-store.js';
import { ASSET_FOLDER, type AssetStore } from '../store/asset-store.js';
import type { BlobStore } from '../store/blob/blob-store.js';
import { openBundleFile } from './bundle-file.js';
import {
  BUNDLE_FORMAT,
  type BundleManifest,
  INDEX_BUNDLE_PATH,
  MANIFEST_PATH,
  type ManifestFile,
} from './bundle-manifest.js';
import { ensureIdentity } from './registry-identity.js';
import type { TransferProgress } from './transfer-progress.js';

export interface ExportOptions {
  /** An earlier bundle file or a commit of the served index: carry only what came after it. */
  since?: string;
  progress: TransferProgress;
}

export interface ExportSummary {
  file: string;
  registry: { name: string; id: string };
  commit: string;
  prerequisite: string | null;
  files: { archives: number; assets: number; symbols: number; total: number };
  /** Bytes of the bundle file. */
  bytes: number;
  seconds: number;
}

/** A stored blob's bytes, for the bundle; gone since it was listed is an error (the lock is held). */
async function readBlob(blobs: BlobStore, key: string): Promise<Readable> {
  const stored = await blobs.read(key);
  if (!stored)
    throw new RegistryError('NOT_FOUND', `${key} disappeared from ${blobs.description} while exporting`);
  return stored.body;
}

interface PlannedFile {
  /** Path in the bundle. */
  path: string;
  /** A local file, or where a stored blob is read from (a file or a bucket). */
  source: string | (() => Promise<Readable>);
  size: number;
  /** Its sha256 when known without reading it (a symbols copy's record). */
  sha256?: string;
}

/**
 * Writes the served index and everything it needs into one bundle file (bundle-manifest.ts).
 * With `since`, only what the served index gained after that commit: the index commits
 * (git bundle with the commit as prerequisite), the archives of lines it did not serve, their
 * assets, and symbols files the earlier bundle did not carry with the same bytes. The registry
 * lock is held meanwhile, so gc cannot remove a file being copied.
 */
export async function exportBundle(
  registry: Registry,
  file: string,
  options: ExportOptions,
): Promise<ExportSummary> {
  const startedAt = performance.now();
  const { layout } = registry;
  const lock = await acquireRegistryLock(layout.lockTarget, 'export', { waitForBriefMs: 60_000 });
  const temp = await processTempDir(layout.tmpDir);
  try {
    const identity = await ensureIdentity(layout.identityFile);
    const tip = await registry.servedIndex.head();
    if (!tip) throw new RegistryError('NOT_FOUND', 'the served index has no commit yet');
    const since = options.since ? await resolveSince(registry, options.since, tip) : undefined;
    if (since?.commit === tip) {
      throw new RegistryError(
        'USAGE',
        `nothing to export: the served index is still at ${tip.slice(0, 12)}`,
        {
          hint: 'the earlier bundle already carries everything served here',
        },
      );
    }
    const served = await readSourceCatalog('served', layout.indexDir, tip);
    const before = since ? await readSourceCatalog('served', layout.indexDir, since.commit) : undefined;
    options.progress.info(
      `exporting the served index at ${tip.slice(0, 12)}${since ? ` since ${since.commit.slice(0, 12)}` : ''}`,
    );

    const indexFile = join(temp.path, `index-${process.pid}.bundle`);
    await createIndexBundle(layout.indexDir, indexFile, since?.commit);
    const planned: PlannedFile[] = [
      { path: INDEX_BUNDLE_PATH, source: indexFile, size: (await stat(indexFile)).size },
    ];
    const counts = { archives: 0, assets: 0, symbols: 0 };
    const assets = await assetsByVersion(registry.assets);
    for (const [module, versions] of served.modules) {
      for (const [version, entry] of versions) {
        if (before?.modules.get(module)?.get(version)?.checksum === entry.checksum) continue;
        const size = await registry.store.size(module, version, entry.checksum);
        if (size === undefined) {
          throw new RegistryError(
            'NOT_FOUND',
            `the served index lists ${moduleKey(module, version)} but its archive is not in data/packages`,
            {
              hint: 'run `moonbit-registry verify --repair` first',
            },
          );
        }
        const key = registry.store.keyFor(module, version, entry.checksum);
        const source = async () => {
          const stored = await registry.store.read(module, version, entry.checksum);
          if (!stored)
            throw new RegistryError('NOT_FOUND', `${moduleKey(module, version)}: its archive is gone`);
          return stored.body;
        };
        planned.push({ path: key, source, size });
        counts.archives++;
        for (const asset of assets.get(`${module}/${version}`) ?? []) {
          planned.push({
            path: asset.key,
            source: () => readBlob(registry.assets.blobs, asset.key),
            size: asset.size,
          });
          counts.assets++;
        }
      }
    }
    // Only the zip this registry serves (the highest-priority source that has one): the
    // importer serves it as its bundle source's, under a record of its own.
    const servedCopy = await servedSymbols(
      registry.blobs,
      enabledSources(registry.config).map((s) => s.name),
    );
    const symbolsSize = servedCopy && (await registry.blobs.stat(servedCopy.key))?.size;
    if (servedCopy && symbolsSize !== undefined) {
      planned.push({
        path: servedCopy.key,
        source: () => readBlob(registry.blobs, servedCopy.key),
        size: symbolsSize,
        ...(servedCopy.record.sha256 ? { sha256: servedCopy.record.sha256 } : {}),
      });
    }
    const manifestBase = {
      format: BUNDLE_FORMAT,
      version: 1 as const,
      registry: { name: registry.config.registry.name, id: identity.id },
      created: new Date().toISOString(),
      index: { commit: tip, prerequisite: since?.commit ?? null },
    };
    const files = await writeZip(file, planned, since?.carried, manifestBase, options.progress);
    counts.symbols = files.filter((f) => f.path.startsWith('symbols/')).length;
    return {
      file,
      registry: manifestBase.registry,
      commit: tip,
      prerequisite: since?.commit ?? null,
      files: { ...counts, total: files.length },
      bytes: (await stat(file)).size,
      seconds: (performance.now() - startedAt) / 1000,
    };
  } finally {
    await temp.remove();
    await lock.release();
  }
}

/**
 * `--since`: an earlier bundle (its commit, and the sha256 of each file it carried) or a commit
 * id of the served index; either must be an ancestor of what is served now.
 */
async function resolveSince(
  registry: Registry,
  since: string,
  tip: string,
): Promise<{ commit: string; carried: Map<string, string> }> {
  const carried = new Map<string, string>();
  let commit: string | undefined;
  if (await pathExists(since)) {
    const earlier = await openBundleFile(since);
    earlier.close();
    commit = earlier.manifest.index.commit;
    for (const f of earlier.manifest.files) carried.set(f.path, f.sha256);
  } else if (/^[0-9a-f]{4,40}$/i.test(since)) {
    commit = await resolveCommit(registry.layout.indexDir, since);
    if (!commit) {
      throw new RegistryError('NOT_FOUND', `--since ${since}: no such commit in the served index`, {
        hint: 'give the earlier bundle file, or a commit `git log` shows in data/index',
      });
    }
  } else {
    throw new RegistryError('USAGE', `--since ${since}: neither a bundle file nor a commit id`);
  }
  if (!(await isAncestor(registry.layout.indexDir, commit, tip).catch(() => false))) {
    throw new RegistryError(
      'INVALID',
      `--since ${since}: commit ${commit.slice(0, 12)} is not in the served index's history`,
      {
        hint: 'was the earlier bundle exported by another registry?',
      },
    );
  }
  return { commit, carried };
}

/**
 * Streams the files into a zip at a temp name beside `file`, hashing each as it is copied,
 * then appends the manifest and renames: a reader never finds a half-written bundle at `file`.
 * A symbols file whose sha256 (as its record says) equals the one the earlier bundle carried is
 * left out.
 */
async function writeZip(
  file: string,
  planned: PlannedFile[],
  carried: Map<string, string> | undefined,
  manifestBase: Omit<BundleManifest, 'files'>,
  progress: TransferProgress,
): Promise<ManifestFile[]> {
  const kept: PlannedFile[] = [];
  for (const p of planned) {
    if (
      carried &&
      p.path.startsWith('symbols/') &&
      p.sha256 !== undefined &&
      carried.get(p.path) === p.sha256
    )
      continue;
    kept.push(p);
  }
  progress.start(
    kept.length,
    kept.reduce((n, p) => n + p.size, 0),
  );
  const zip = new yazl.ZipFile();
  const temp = tempPathFor(file);
  const written = pipeline(zip.outputStream, createWriteStream(temp, { flags: 'wx' }));
  const files: ManifestFile[] = [];
  // yazl reports a file whose size changed since it was listed here, on the zip itself.
  const failed = new Promise<never>((_, reject) => zip.on('error', reject));
  failed.catch(() => undefined);
  try {
    const hashed = kept.map(
      (p) =>
        new Promise<ManifestFile>((resolve, reject) => {
          zip.addReadStreamLazy(p.path, { compress: false, size: p.size, mtime: new Date(0) }, (callback) => {
            const hash = createHash('sha256');
            const hasher = new Transform({
              transform(chunk: Buffer, _encoding, done) {
                hash.update(chunk);
                done(null, chunk);
              },
              flush(done) {
                progress.advance(p.size);
                resolve({ path: p.path, sha256: hash.digest('hex'), size: p.size });
                done();
              },
            });
            const fail = (error: Error) => {
              reject(error);
              hasher.destroy(error);
            };
            const opened =
              typeof p.source === 'string' ? Promise.resolve(createReadStream(p.source)) : p.source();
            opened.then((input) => {
              input.on('error', fail);
              callback(null, input.pipe(hasher));
            }, fail);
          });
        }),
    );
    files.push(
      ...(await Promise.race([Promise.all(hashed), written.then(() => [] as ManifestFile[]), failed])),
    );
    const manifest: BundleManifest = { ...manifestBase, files };
    zip.addBuffer(Buffer.from(`${JSON.stringify(manifest)}\n`), MANIFEST_PATH, {
      compress: false,
      mtime: new Date(0),
    });
    zip.end();
    await written;
    await rename(temp, file);
    progress.finish();
    return files;
  } catch (error) {
    progress.finish();
    (zip.outputStream as unknown as Readable).destroy();
    await written.catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * The stored assets (assets/ in data/ or the bucket), listed once: `<module>/<version>` -> its
 * blobs. Module names nest, so each blob is filed under every folder above it that could be a
 * version's.
 */
async function assetsByVersion(
  store: AssetStore,
): Promise<Map<string, Array<{ key: string; size: number }>>> {
  const byFolder = new Map<string, Array<{ key: string; size: number }>>();
  const blobs: Array<{ key: string; size: number }> = [];
  for await (const blob of store.blobs.list(ASSET_FOLDER)) {
    // Temp files of a writer killed mid-way (.name.tmp-...) and records (.assets.json) are no content.
    if (blob.key.split('/').some((segment) => segment.startsWith('.'))) continue;
    blobs.push({ key: blob.key, size: blob.size });
  }
  blobs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)); // a stable bundle order
  const keys = new Set(blobs.map((blob) => blob.key));
  // Only a wasm with its `.sha256` is a stored asset (asset-store.ts); the importer refuses halves.
  const paired = (key: string) =>
    key.endsWith('.wasm')
      ? keys.has(`${key}.sha256`)
      : key.endsWith('.wasm.sha256') && keys.has(key.slice(0, -'.sha256'.length));
  for (const blob of blobs.filter((b) => paired(b.key))) {
    const parts = blob.key.slice(ASSET_FOLDER.length).split('/');
    for (let end = 2; end < parts.length; end++) {
      const folder = parts.slice(0, end).join('/');
      const list = byFolder.get(folder);
      if (list) list.push(blob);
      else byFolder.set(folder, [blob]);
    }
  }
  return byFolder;
}
