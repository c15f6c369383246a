import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import { SOURCE_NAME_PATTERN } from '../config/schema.js';
import { placeholderSourceUrl } from '../config/source-location.js';
import { updateConfigFile } from '../config/toml-file.js';
import { RegistryError } from '../core/errors.js';
import { moduleKey } from '../core/module-name.js';
import { pathExists } from '../fs/path-exists.js';
import { clearDeadTemps, processTempDir } from '../fs/temp-dirs.js';
import { hasCommit, isAncestor, unbundleIndex } from '../git/bundle.js';
import { resolveCommit } from '../git/objects.js';
import { runGit } from '../git/run-git.js';
import { readSourceCatalog, type SourceCatalog } from '../index/source-catalog.js';
import { sourceIndexDir } from '../registry/layout.js';
import { acquireRegistryLock, type RegistryLock } from '../registry/lock.js';
import { type OpenOptions, openRegistry, type Registry } from '../registry/registry.js';
import { planServedVersions, publishServed } from '../registry/served-plan.js';
import {
  cachedCatalogs,
  enabledUpstreams,
  type IndexLog,
  mergeWithHosted,
} from '../registry/source-indexes.js';
import { storeImportedSymbols } from '../registry/symbols-store.js';
import { FETCHED_REF, INDEX_URL_KEY } from '../upstream/upstream-source.js';
import { checkBundledAssets, installBundledAssets } from './bundle-assets.js';
import { type BundleFile, openBundleFile } from './bundle-file.js';
import {
  type BundleManifest,
  classifyEntry,
  INDEX_BUNDLE_PATH,
  type ManifestFile,
} from './bundle-manifest.js';
import { ensureIdentity, type RegistryIdentity, withImport, writeIdentity } from './registry-identity.js';
import type { TransferProgress } from './transfer-progress.js';

export interface ImportOptions {
  /** Accept a bundle from another registry than the one this registry imports from. */
  force: boolean;
  progress: TransferProgress;
  log: IndexLog;
}

export interface ImportSummary {
  file: string;
  registry: { name: string; id: string };
  /** The bundle source of this registry that the bundle feeds. */
  source: string;
  commit: string;
  prerequisite: string | null;
  files: { archives: number; assets: number; symbols: number; total: number };
  /** Archives that were not here before. */
  newArchives: number;
  /** Bytes of the bundle file. */
  bytes: number;
  seconds: number;
  index: {
    commit: string;
    changed: boolean;
    versions: number;
    added: number;
    updated: number;
    removed: number;
  };
}

/**
 * Entries unpacked at once (yauzl reads each from its own offset) and files renamed at once:
 * a snapshot is thousands of small archives, whose cost is opening and closing files.
 */
const ENTRIES_IN_FLIGHT = 8;
const MOVES_IN_FLIGHT = 16;

/** Priority of a bundle source: below published modules (0), above upstreams (100 by default). */
const BUNDLE_SOURCE_PRIORITY = 1;

/**
 * Applies a bundle written by `export` (bundle-manifest.ts). The exporting registry becomes a
 * source of this one, of type "bundle": its served index is kept in the source's repository
 * (data/sources/<name>/index.git) and merged into the served index like any source's, so
 * `serve`, `sync`, `mirror` and `index rebuild` keep serving it instead of rebuilding the
 * index from this registry's own (offline) sources.
 *
 * Order, so that a kill at any point leaves the registry serving what it served before:
 * everything is unpacked into data/tmp and checked against the manifest first; then the
 * archives are moved into data/packages (content-addressed: harmless while unreferenced),
 * assets and symbols after them; then the source's branch moves in one `git update-ref`,
 * and the served index is published last, in one commit.
 */
export async function importBundle(
  registry: Registry,
  file: string,
  options: ImportOptions,
  openOptions: OpenOptions = {},
): Promise<ImportSummary> {
  const startedAt = performance.now();
  const { layout } = registry;
  const lock = await acquireRegistryLock(layout.lockTarget, 'import', { waitForBriefMs: 60_000 });
  let bundle: BundleFile | undefined;
  let newRepository: string | undefined;
  await clearDeadTemps(layout.tmpDir);
  const temp = await processTempDir(layout.tmpDir);
  try {
    bundle = await openBundleFile(file);
    const { manifest } = bundle;
    const identity = await ensureIdentity(layout.identityFile);
    await checkIdentity(registry, identity, manifest, options.force);
    const source = bundleSourceName(registry, identity, manifest);
    const gitDir = sourceIndexDir(layout, source.name);
    const current = (await pathExists(join(gitDir, 'HEAD')))
      ? await resolveCommit(gitDir, FETCHED_REF)
      : undefined;
    await checkPrerequisite(gitDir, manifest, current);
    options.progress.info(
      `importing ${manifest.registry.name}'s index at ${manifest.index.commit.slice(0, 12)} as source "${source.name}"`,
    );

    const staging = join(temp.path, 'import');
    await unpack(bundle, staging, file, options.progress);
    bundle.close();
    bundle = undefined;

    // A first import refused from here on takes away the folder it made for its source.
    newRepository = (await pathExists(dirname(gitDir))) ? undefined : dirname(gitDir);
    await prepareRepository(gitDir, source.indexUrl);
    const tip = await unbundleIndex(gitDir, join(staging, INDEX_BUNDLE_PATH));
    if (tip !== manifest.index.commit) {
      throw new RegistryError(
        'INVALID',
        `${file}: its index is at ${tip.slice(0, 12)}, its manifest says ${manifest.index.commit.slice(0, 12)}`,
      );
    }
    const moveRef = await checkHistory(gitDir, current, tip, options.force);
    const catalog = await readSourceCatalog(source.name, gitDir, tip);
    await checkArchivesComplete(registry, catalog, manifest);
    const assets = await checkBundledAssets(manifest.files, catalog, staging, file);

    const counts = { archives: 0, assets: 0, symbols: 0, total: manifest.files.length };
    // Archives first: nothing names them until the index moves. Renames, a few at a time.
    const limit = pLimit(MOVES_IN_FLIGHT);
    const archives = manifest.files.flatMap((f) => {
      const entry = classifyEntry(f.path);
      return entry?.kind === 'archive' ? [{ path: f.path, ...entry }] : [];
    });
    counts.archives = archives.length;
    const moved = await Promise.all(
      archives.map((a) =>
        limit(async () => {
          if (await registry.store.has(a.module, a.version, a.checksum)) return 0;
          await registry.store.put(a.module, a.version, a.checksum, join(staging, a.path));
          return 1;
        }),
      ),
    );
    const newArchives = moved.reduce<number>((n, m) => n + m, 0);
    const installed = await installBundledAssets(registry.assets, assets);
    counts.assets = assets.length;
    for (const name of installed.keptDiffering) {
      options.progress.info(`kept the stored asset of ${name}: the bundle's has other bytes`);
    }
    for (const f of manifest.files) {
      const entry = classifyEntry(f.path);
      if (entry?.kind === 'symbols') {
        // The exporter's served zip becomes this registry's bundle source's.
        counts.symbols++;
        if (basename(entry.rel) === 'symbols.zip') {
          await storeImportedSymbols(registry.blobs, source.name, join(staging, f.path), f.sha256, f.size);
        }
      }
    }
    newRepository = undefined; // registry.toml names it from here on
    await addBundleSource(registry, source.name, source.indexUrl);
    if (moveRef) {
      // The commit point: one ref update, refused if anything moved it since we looked.
      await runGit(['--git-dir', gitDir, 'update-ref', FETCHED_REF, tip, current ?? '0'.repeat(40)]);
    }
    const record = {
      id: manifest.registry.id,
      name: manifest.registry.name,
      source: source.name,
      commit: moveRef ? tip : (current ?? tip),
      at: new Date().toISOString(),
    };
    await writeIdentity(layout.identityFile, withImport(identity, record));
    lock.assertHeld();
    const index = await publishIndex(
      await openRegistry(layout.root, openOptions),
      lock,
      options.log,
      `import ${manifest.registry.name} ${tip.slice(0, 12)}`,
    );
    return {
      file,
      registry: manifest.registry,
      source: source.name,
      commit: tip,
      prerequisite: manifest.index.prerequisite,
      files: counts,
      newArchives,
      bytes: (await stat(file)).size,
      seconds: (performance.now() - startedAt) / 1000,
      index,
    };
  } catch (error) {
    if (newRepository) await rm(newRepository, { recursive: true, force: true });
    throw error;
  } finally {
    bundle?.close();
    await temp.remove();
    await lock.release();
  }
}

/**
 * A registry that has never imported accepts a bundle from anyone only while it stores nothing
 * of its own; after its first import, only bundles of that same registry (unless forced).
 */
async function checkIdentity(
  registry: Registry,
  identity: RegistryIdentity,
  manifest: BundleManifest,
  force: boolean,
): Promise<void> {
  const from = `"${manifest.registry.name}" (id ${manifest.registry.id})`;
  if (manifest.registry.id === identity.id) {
    throw new RegistryError('INVALID', `this bundle was exported by this very registry (id ${identity.id})`);
  }
  if (force) return;
  const first = identity.imports[0];
  if (first && first.id !== manifest.registry.id) {
    throw new RegistryError(
      'FORBIDDEN',
      `this bundle comes from registry ${from}, but this registry imports from "${first.name}" (id ${first.id})`,
      {
        hint: 'pass --force to import it anyway, as a source of its own',
      },
    );
  }
  if (!first && (await servesAnything(registry))) {
    throw new RegistryError(
      'FORBIDDEN',
      `this registry already serves modules of its own; a bundle from ${from} would be mixed with them`,
      {
        hint: 'import into a registry fresh from `moonbit-registry init`, or pass --force',
      },
    );
  }
}

/**
 * Whether the served index lists anything. Not "data/packages is empty": a first import killed
 * after moving its archives must be accepted when run again, and it published nothing yet.
 */
async function servesAnything(registry: Registry): Promise<boolean> {
  const { stdout } = await runGit(['--git-dir', registry.layout.indexDir, 'ls-tree', '--name-only', 'HEAD']);
  return stdout.length > 0;
}

/** The source fed by bundles of this registry: the one it fed before, else one named after it. */
function bundleSourceName(
  registry: Registry,
  identity: RegistryIdentity,
  manifest: BundleManifest,
): { name: string; indexUrl: string } {
  const known = identity.imports.find((r) => r.id === manifest.registry.id)?.source;
  let name = known;
  if (!name) {
    const base =
      manifest.registry.name
        .replace(/[^A-Za-z0-9_-]+/g, '-')
        .replace(/^[-_]+/, '')
        .slice(0, 56) || 'imported';
    const taken = new Set([...registry.config.sources.map((s) => s.name), registry.config.hosted.name]);
    name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
  }
  if (!SOURCE_NAME_PATTERN.test(name)) throw new RegistryError('CONFIG', `cannot name a source "${name}"`);
  // Never fetched (upstream-source.ts).
  const url = placeholderSourceUrl(name, 'bundle');
  return { name, indexUrl: `${url}/git/index` };
}

async function checkPrerequisite(
  gitDir: string,
  manifest: BundleManifest,
  current: string | undefined,
): Promise<void> {
  const prerequisite = manifest.index.prerequisite;
  if (!prerequisite || (current && (await hasCommit(gitDir, prerequisite)))) return;
  throw new RegistryError(
    'INVALID',
    `this bundle continues from commit ${prerequisite.slice(0, 12)} of "${manifest.registry.name}", which this registry never imported`,
    {
      hint: current
        ? `import the bundles before it, or ask for \`moonbit-registry export FILE --since ${current}\``
        : 'import a full bundle first (`moonbit-registry export FILE` without --since)',
    },
  );
}

/** Whether the source's branch moves to `tip`; refuses to move it back or sideways unless forced. */
async function checkHistory(
  gitDir: string,
  current: string | undefined,
  tip: string,
  force: boolean,
): Promise<boolean> {
  if (!current) return true;
  if (current === tip || (await isAncestor(gitDir, tip, current))) return false; // already imported
  if (force || (await isAncestor(gitDir, current, tip))) return true;
  throw new RegistryError(
    'INVALID',
    `this bundle's index (${tip.slice(0, 12)}) does not continue the one imported last (${current.slice(0, 12)})`,
    {
      hint: 'pass --force to replace it',
    },
  );
}

/** Every line the bundle's index serves needs its archive: here already, or in the bundle. */
async function checkArchivesComplete(
  registry: Registry,
  catalog: SourceCatalog,
  manifest: BundleManifest,
): Promise<void> {
  const carried = new Set(manifest.files.map((f) => f.path));
  const missing: string[] = [];
  for (const [module, versions] of catalog.modules) {
    for (const [version, entry] of versions) {
      const path = `packages/${module}/${version}/${entry.checksum}.zip`;
      if (!carried.has(path) && !(await registry.store.has(module, version, entry.checksum)))
        missing.push(moduleKey(module, version));
    }
  }
  if (missing.length > 0) {
    throw new RegistryError(
      'INVALID',
      `the bundle's index serves ${missing.length} versions whose archives are neither in the bundle nor here: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`,
      {
        hint: 'import the earlier bundles first',
      },
    );
  }
}

/** Copies every entry into `staging`, checking each against the manifest's size and sha256. */
async function unpack(
  bundle: BundleFile,
  staging: string,
  file: string,
  progress: TransferProgress,
): Promise<void> {
  const { files } = bundle.manifest;
  progress.start(
    files.length,
    files.reduce((n, f) => n + f.size, 0),
  );
  try {
    const limit = pLimit(ENTRIES_IN_FLIGHT);
    const folders = new Map<string, Promise<unknown>>();
    const one = async (f: ManifestFile) => {
      const target = join(staging, f.path);
      const folder = dirname(target);
      let made = folders.get(folder);
      if (!made) {
        made = mkdir(folder, { recursive: true });
        folders.set(folder, made);
      }
      await made;
      const hash = createHash('sha256');
      let size = 0;
      try {
        const input = await bundle.openEntry(bundle.entries.get(f.path) as never);
        const counter = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            hash.update(chunk);
            size += chunk.length;
            done(null, chunk);
          },
        });
        await pipeline(input, counter, createWriteStream(target, { flags: 'wx' }));
      } catch (error) {
        throw new RegistryError('CHECKSUM', `${file} is damaged: ${f.path}: ${(error as Error).message}`, {
          hint: 'copy the file again or export it again; nothing was changed here',
        });
      }
      const sha256 = hash.digest('hex');
      if (size !== f.size || sha256 !== f.sha256) {
        throw new RegistryError(
          'CHECKSUM',
          `${file} is damaged: ${f.path} has sha256 ${sha256} (${size} bytes), its manifest says ${f.sha256} (${f.size} bytes)`,
          {
            hint: 'copy the file again or export it again; nothing was changed here',
          },
        );
      }
      progress.advance(f.size);
    };
    await Promise.all(
      files.map((f) =>
        limit(() =>
          one(f).catch((error: unknown) => {
            limit.clearQueue(); // the bundle is refused: unpack nothing more
            throw error;
          }),
        ),
      ),
    );
  } finally {
    progress.finish();
  }
}

/** The bundle source's repository, made like a fetched source's (upstream-source.ts). */
async function prepareRepository(gitDir: string, indexUrl: string): Promise<void> {
  if (!(await pathExists(join(gitDir, 'HEAD')))) {
    await mkdir(gitDir, { recursive: true });
    await runGit(['init', '--bare', '--quiet', '--initial-branch=main', gitDir]);
  }
  await runGit(['--git-dir', gitDir, 'config', INDEX_URL_KEY, indexUrl]);
}

/** Adds the bundle source to registry.toml (once), enabled. */
async function addBundleSource(registry: Registry, name: string, indexUrl: string): Promise<void> {
  await updateConfigFile(registry.configFile, (raw) => {
    if (raw.sources === undefined) raw.sources = [];
    const sources = raw.sources as Array<Record<string, unknown>>;
    const existing = sources.find((s) => s.name === name);
    if (existing) {
      if (existing.type !== 'bundle') {
        throw new RegistryError('CONFIG', `source "${name}" exists and is not a bundle source`);
      }
      existing.enabled = true;
      return;
    }
    sources.push({
      name,
      type: 'bundle',
      url: indexUrl.replace(/\/git\/index$/, ''),
      index_url: indexUrl,
      index_type: 'git',
      enabled: true,
      priority: BUNDLE_SOURCE_PRIORITY,
    });
  });
}

/** The served index from every enabled source's last index, as `index rebuild` makes it, under our lock. */
async function publishIndex(
  registry: Registry,
  lock: RegistryLock,
  log: IndexLog,
  title: string,
): Promise<ImportSummary['index']> {
  const merged = await mergeWithHosted(
    registry,
    await cachedCatalogs(enabledUpstreams(registry.config, registry.layout), log),
    log,
  );
  const plan = await planServedVersions(registry, merged, new Set());
  lock.assertHeld();
  const outcome = await publishServed(registry, plan, title);
  return {
    commit: outcome.commit,
    changed: outcome.changed,
    versions: outcome.versions,
    added: outcome.added,
    updated: outcome.updated,
    removed: outcome.removed,
  };
}
