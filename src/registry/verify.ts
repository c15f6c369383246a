import { isAbsolute, relative, sep } from 'node:path';
import pLimit from 'p-limit';
import { describeError, RegistryError } from '../core/errors.js';
import { indexPathForModule, moduleFromIndexPath, moduleKey } from '../core/module-name.js';
import { clearDeadTemps, processTempDir } from '../fs/temp-dirs.js';
import { listTree, readBlobs } from '../git/objects.js';
import { type IndexEntry, parseIndexFile } from '../index/index-file.js';
import type { MergedCatalog } from '../index/merged-catalog.js';
import { hashBlob, removeStoreEntry, type StoredArchive, scanArchives } from '../store/archive-scan.js';
import { fetchArchive } from '../upstream/archive-fetch.js';
import { createSourceAgents } from '../upstream/http-agent.js';
import type { UpstreamSource } from '../upstream/upstream-source.js';
import { acquireRegistryLock, type RegistryLock } from './lock.js';
import { readProvenance, writeProvenance } from './provenance.js';
import type { Registry } from './registry.js';
import {
  cachedCatalogs,
  downloadLimits,
  enabledUpstreams,
  type IndexLog,
  mergeWithHosted,
} from './source-indexes.js';
import { damagedSymbols } from './symbols-store.js';
import { type AssetProblem, type AssetRepair, checkAssets, repairAssets } from './verify-assets.js';

export type ProblemKind =
  | 'unparsable-line'
  | 'missing-archive'
  | 'corrupt-archive'
  | 'no-source'
  | 'corrupt-asset'
  | 'stray-file'
  | 'corrupt-symbols';

export interface Problem {
  kind: ProblemKind;
  module?: string;
  version?: string;
  /** Relative to the registry folder (`data/packages/...`), or to the index (`user/...`). */
  path?: string;
  detail: string;
}

/**
 * What --repair did about one problem. Repaired: downloaded again, deleted, line removed.
 * Unrepaired: the version was dropped from the served index, or the problem is still there.
 */
export type RepairAction = 'downloaded' | 'deleted' | 'removed' | 'dropped' | 'left';

export interface RepairOutcome extends Problem {
  action: RepairAction;
}

export interface VerifyReport {
  ok: boolean;
  /** The served index commit that was checked. */
  commit: string;
  /** assets: executable packages of served versions whose prebuilt wasm files were checked. */
  checked: { versions: number; archives: number; bytes: number; assets: number };
  /** Well-formed archives of versions the served index does not list (not a problem). */
  unlisted: number;
  problems: Problem[];
  repaired?: RepairOutcome[];
  unrepaired?: RepairOutcome[];
  /** The served index after --repair (a new commit only when something was dropped or removed). */
  index?: { commit: string; changed: boolean };
}

export interface VerifyOptions {
  repair: boolean;
  log: IndexLog;
}

/** A served version: its line, where its archive belongs, and whether a source still has it. */
interface ServedVersion {
  entry: IndexEntry;
  path: string;
  key: string;
  /** Its stored archive holds other bytes (or cannot be read). */
  corrupt: boolean;
}

interface Check {
  commit: string;
  /** module -> version -> served line, as `moon` reads it (bad lines skipped). */
  served: Map<string, Map<string, IndexEntry>>;
  problems: Problem[];
  /** Served versions with problems, by module@version. */
  broken: Map<string, ServedVersion>;
  /** Files to delete on repair (strays, and corrupt archives of unlisted versions), by problem. */
  files: Map<Problem, { path: string; key?: string; directory: boolean }>;
  /** Bad prebuilt wasm of served versions, by problem. */
  assets: Map<Problem, AssetProblem>;
  report: Omit<VerifyReport, 'ok' | 'problems'>;
}

const HASH_CONCURRENCY = 8;

/**
 * Checks the served index (`data/index`) against the archive store and the last fetched source
 * indexes, without network; with repair, fixes what it can and publishes one index commit. Holds
 * the registry lock throughout, so no mirror changes either while they are compared.
 */
export async function verifyRegistry(registry: Registry, options: VerifyOptions): Promise<VerifyReport> {
  const what = options.repair ? 'verify --repair' : 'verify';
  const lock = await acquireRegistryLock(registry.layout.lockTarget, what, { waitForBriefMs: 60_000 });
  try {
    const upstreams = enabledUpstreams(registry.config, registry.layout);
    const merged = await mergeWithHosted(registry, await cachedCatalogs(upstreams, options.log), options.log);
    const check = await checkRegistry(registry, merged);
    if (check.problems.length === 0) {
      const nothing = options.repair ? { repaired: [], unrepaired: [] } : {};
      return { ok: true, ...check.report, problems: [], ...nothing };
    }
    if (!options.repair) return { ok: false, ...check.report, problems: check.problems };
    const repair = await repairRegistry(registry, check, merged, upstreams, lock, options.log);
    return {
      ok: repair.unrepaired.length === 0,
      ...check.report,
      problems: check.problems,
      ...repair,
    };
  } finally {
    await lock.release();
  }
}

async function checkRegistry(registry: Registry, merged: MergedCatalog): Promise<Check> {
  const { layout, store } = registry;
  const commit = await registry.servedIndex.head();
  if (!commit) {
    throw new RegistryError('GIT', `the served index ${layout.indexDir} has no commit on main`, {
      hint: 'run `moonbit-registry init --force` in the registry folder (data/ is kept)',
    });
  }
  const problems: Problem[] = [];
  const served = await readServedIndex(registry.servedIndex.gitDir, commit, problems);
  const scan = await scanArchives(store);
  // Files by their path in the registry folder; bucket objects by their URL.
  const rel = (path: string) => (isAbsolute(path) ? relative(layout.root, path).split(sep).join('/') : path);

  // Every stored archive is hashed once, listed or not: that is what verify is for.
  const hashes = new Map<string, { checksum: string } | { error: string }>();
  let bytes = 0;
  const limit = pLimit(HASH_CONCURRENCY);
  await Promise.all(
    scan.archives.map((archive) =>
      limit(async () => {
        try {
          const hashed = await hashBlob(store.blobs, archive.key);
          if (!hashed) return; // gone since the scan: counts as not stored
          bytes += hashed.bytes;
          hashes.set(archive.path, hashed);
        } catch (error) {
          // Gone since the scan: counts as not stored.
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
          hashes.set(archive.path, { error: describeError(error) });
        }
      }),
    ),
  );
  const badBytes = (archive: StoredArchive): string | undefined => {
    const result = hashes.get(archive.path);
    if (!result) return undefined;
    if ('error' in result) return `cannot be read: ${result.error}`;
    return result.checksum === archive.checksum
      ? undefined
      : `stored bytes hash to ${short(result.checksum)}, not ${short(archive.checksum)}`;
  };
  const stored = new Map(scan.archives.filter((a) => hashes.has(a.path)).map((a) => [a.path, a]));

  const broken = new Map<string, ServedVersion>();
  const files = new Map<Problem, { path: string; key?: string; directory: boolean }>();
  const servedPaths = new Set<string>();
  let versions = 0;
  for (const [module, entries] of served) {
    for (const [version, entry] of entries) {
      versions++;
      const path = store.locate(module, version, entry.checksum);
      const key = store.keyFor(module, version, entry.checksum);
      servedPaths.add(path);
      const found: Problem[] = [];
      const archive = stored.get(path);
      const at = { module, version, path: rel(path) };
      const bad = archive && badBytes(archive);
      if (!archive) {
        found.push({ kind: 'missing-archive', ...at, detail: `no archive ${short(entry.checksum)} on disk` });
      } else if (bad) {
        found.push({ kind: 'corrupt-archive', ...at, detail: bad });
      }
      if (merged.sourcesWithChecksum(module, version, entry.checksum).length === 0) {
        found.push({ kind: 'no-source', ...at, detail: noSourceDetail(merged, entry) });
      }
      if (found.length > 0) {
        broken.set(moduleKey(module, version), { entry, path, key, corrupt: bad !== undefined });
        problems.push(...found);
      }
    }
  }
  let unlisted = 0;
  for (const archive of stored.values()) {
    if (servedPaths.has(archive.path)) continue;
    unlisted++;
    const bad = badBytes(archive);
    if (bad) {
      const problem: Problem = {
        kind: 'corrupt-archive',
        module: archive.module,
        version: archive.version,
        path: rel(archive.path),
        detail: `not served; ${bad}`,
      };
      files.set(problem, { path: archive.path, key: archive.key, directory: false });
      problems.push(problem);
    }
  }
  const assetCheck = await checkAssets(registry, served);
  const assets = new Map<Problem, AssetProblem>();
  for (const bad of assetCheck.problems) {
    const problem: Problem = {
      kind: 'corrupt-asset',
      module: bad.pkg.module,
      version: bad.pkg.version,
      path: rel(bad.path),
      detail: bad.detail,
    };
    assets.set(problem, bad);
    problems.push(problem);
  }
  for (const stray of scan.strays) {
    const problem: Problem = { kind: 'stray-file', path: rel(stray.path), detail: stray.reason };
    files.set(problem, stray);
    problems.push(problem);
  }
  // A damaged symbols.zip is deleted on repair: the next mirror or sync fetches it whole.
  for (const damaged of await damagedSymbols(registry.blobs, layout.tmpDir)) {
    const problem: Problem = { kind: 'corrupt-symbols', path: rel(damaged.path), detail: damaged.detail };
    files.set(problem, { path: damaged.path, key: damaged.key, directory: false });
    problems.push(problem);
  }
  problems.sort(byPlace);
  return {
    commit,
    served,
    problems,
    broken,
    files,
    assets,
    report: {
      commit,
      checked: { versions, archives: hashes.size, bytes, assets: assetCheck.checked },
      unlisted,
    },
  };
}

/** Reads every `user/**.index` file at `commit` leniently, as `moon` does, noting each skipped line. */
async function readServedIndex(
  gitDir: string,
  commit: string,
  problems: Problem[],
): Promise<Map<string, Map<string, IndexEntry>>> {
  const files = new Map<string, string>();
  for (const [path, oid] of await listTree(gitDir, commit)) {
    const module = moduleFromIndexPath(path);
    if (module) files.set(module, oid);
  }
  const blobs = await readBlobs(gitDir, files.values());
  const served = new Map<string, Map<string, IndexEntry>>();
  for (const [module, oid] of files) {
    const path = indexPathForModule(module);
    const text = blobs.get(oid)?.toString('utf8') ?? '';
    const entries = parseIndexFile(module, text, (message) => {
      const detail = message.startsWith(`${module}: `) ? message.slice(module.length + 2) : message;
      problems.push({ kind: 'unparsable-line', module, path, detail });
    });
    served.set(module, entries);
  }
  return served;
}

function noSourceDetail(merged: MergedCatalog, entry: IndexEntry): string {
  const others = merged.candidates(entry.module, entry.version).map((c) => `"${c.source}"`);
  return others.length > 0
    ? `no enabled source lists it with checksum ${short(entry.checksum)} (${others.join(', ')} list other bytes)`
    : 'no enabled source lists it';
}

const KIND_ORDER: ProblemKind[] = [
  'unparsable-line',
  'missing-archive',
  'corrupt-archive',
  'no-source',
  'corrupt-asset',
  'stray-file',
  'corrupt-symbols',
];

/** Stable report order: index lines, then versions, then stray files, each sorted by place. */
function byPlace(a: Problem, b: Problem): number {
  const place = (p: Problem) => (p.version ? moduleKey(p.module ?? '', p.version) : (p.path ?? ''));
  const group = (p: Problem) => (p.kind === 'unparsable-line' ? 0 : p.kind === 'stray-file' ? 2 : 1);
  return (
    group(a) - group(b) ||
    (place(a) < place(b) ? -1 : place(a) > place(b) ? 1 : 0) ||
    KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind)
  );
}

function short(checksum: string): string {
  return `${checksum.slice(0, 12)}…`;
}

interface RepairResult {
  repaired: RepairOutcome[];
  unrepaired: RepairOutcome[];
  index: { commit: string; changed: boolean };
}

/**
 * Deletes stray and corrupt files, downloads missing and corrupt archives again (same checksum,
 * from the sources that list it), drops from the served index what cannot be downloaded or has
 * no source any more, and publishes the index once. The index is otherwise left as it is: no
 * version is added and no winner changes (that is `index rebuild`'s or `mirror`'s business).
 */
async function repairRegistry(
  registry: Registry,
  check: Check,
  merged: MergedCatalog,
  upstreams: UpstreamSource[],
  lock: RegistryLock,
  log: IndexLog,
): Promise<RepairResult> {
  const byName = new Map(upstreams.map((u) => [u.name, u]));
  const sourcesFor = ({ entry }: ServedVersion) =>
    merged
      .sourcesWithChecksum(entry.module, entry.version, entry.checksum)
      .flatMap((c) => byName.get(c.source) ?? []);
  // A missing credential is a configuration error: say so before anything is changed.
  for (const served of check.broken.values()) for (const upstream of sourcesFor(served)) upstream.headers();

  const deleteErrors = new Map<string, string>();
  const remove = async (entry: { path: string; key?: string; directory?: boolean }) => {
    try {
      await removeStoreEntry(registry.store, entry);
    } catch (error) {
      deleteErrors.set(entry.path, describeError(error));
    }
  };
  await Promise.all([...check.files.values()].map(remove));
  // Corrupt bytes are never served again, even when no good copy can be had.
  const corrupt = [...check.broken.values()].filter((v) => v.corrupt);
  await Promise.all(corrupt.map(remove));

  const failed = new Map<string, string>(); // module@version -> why it is dropped
  // Published here: no upstream has the bytes, and dropping the line would lose the version.
  const published = new Map<string, string>();
  for (const [key, served] of check.broken) {
    const error = deleteErrors.get(served.path);
    const { module, version, checksum } = served.entry;
    if (error) failed.set(key, `its corrupt archive could not be deleted: ${error}`);
    else if (merged.sourcesWithChecksum(module, version, checksum)[0]?.source === registry.hosted.name) {
      published.set(
        key,
        `published to this registry, so no source can download it again: publish ${module}@${version} again (the same bytes)`,
      );
    } else if (sourcesFor(served).length === 0) failed.set(key, noSourceDetail(merged, served.entry));
  }
  const retry = [...check.broken].filter(([key]) => !failed.has(key) && !published.has(key));
  const downloaded = await downloadAgain(registry, retry, sourcesFor, log, failed);
  const assetRepairs = await repairAssetsIn(registry, check, merged, byName);

  // What could not be repaired leaves the served index; skipped lines go with the re-render.
  const desired = new Map<string, IndexEntry[]>();
  for (const [module, entries] of check.served) {
    desired.set(
      module,
      [...entries.values()].filter((e) => !failed.has(moduleKey(e.module, e.version))),
    );
  }
  const lines = check.problems.filter((p) => p.kind === 'unparsable-line').length;
  lock.assertHeld();
  const index = await registry.servedIndex.publish(
    desired,
    `verify --repair\n\n${failed.size} versions dropped, ${downloaded.size} downloaded again, ${lines} unparsable lines removed.\n`,
  );
  await pruneProvenance(registry, desired);

  const repaired: RepairOutcome[] = [];
  const unrepaired: RepairOutcome[] = [];
  for (const problem of check.problems) {
    const key = problem.version && moduleKey(problem.module ?? '', problem.version);
    const file = check.files.get(problem);
    const why = key && failed.get(key);
    const source = key && downloaded.get(key);
    const asset = assetRepairs.get(problem);
    if (asset) {
      if (asset.fetched) repaired.push({ ...problem, action: 'downloaded', detail: asset.detail });
      else if (asset.left) unrepaired.push({ ...problem, action: 'left', detail: asset.detail });
      else repaired.push({ ...problem, action: 'deleted', detail: asset.detail });
    } else if (problem.kind === 'unparsable-line') {
      repaired.push({ ...problem, action: 'removed', detail: 'line removed from the served index' });
    } else if (file) {
      const error = deleteErrors.get(file.path);
      if (error) unrepaired.push({ ...problem, action: 'left', detail: `could not be deleted: ${error}` });
      else repaired.push({ ...problem, action: 'deleted', detail: 'deleted' });
    } else if (why) {
      unrepaired.push({ ...problem, action: 'dropped', detail: `dropped from the served index: ${why}` });
    } else if (key && published.has(key)) {
      unrepaired.push({ ...problem, action: 'left', detail: published.get(key) as string });
    } else if (source) {
      repaired.push({ ...problem, action: 'downloaded', detail: `downloaded again from "${source}"` });
    } else {
      unrepaired.push({ ...problem, action: 'left', detail: 'not repaired' });
    }
  }
  return { repaired, unrepaired, index };
}

/** Deletes bad prebuilt wasm and fetches it again; by problem. */
async function repairAssetsIn(
  registry: Registry,
  check: Check,
  merged: MergedCatalog,
  upstreams: ReadonlyMap<string, UpstreamSource>,
): Promise<Map<Problem, AssetRepair>> {
  const byProblem = new Map<Problem, AssetRepair>();
  if (check.assets.size === 0) return byProblem;
  await clearDeadTemps(registry.layout.tmpDir);
  const tmp = await processTempDir(registry.layout.tmpDir);
  try {
    const outcomes = await repairAssets(
      registry,
      [...check.assets.values()],
      check.served,
      merged,
      upstreams,
      tmp.path,
    );
    for (const [problem, bad] of check.assets) {
      const outcome = outcomes.get(bad);
      if (outcome) byProblem.set(problem, outcome);
    }
  } finally {
    await tmp.remove();
  }
  return byProblem;
}

/** Downloads each version's archive again, with `mirror`'s settings; returns module@version -> source. */
async function downloadAgain(
  registry: Registry,
  versions: Array<[string, ServedVersion]>,
  sourcesFor: (served: ServedVersion) => UpstreamSource[],
  log: IndexLog,
  failed: Map<string, string>,
): Promise<Map<string, string>> {
  const downloaded = new Map<string, string>();
  if (versions.length === 0) return downloaded;
  const { layout, config } = registry;
  log.info(`downloading ${versions.length} archives again`);
  await clearDeadTemps(layout.tmpDir);
  const tmp = await processTempDir(layout.tmpDir);
  const agents = createSourceAgents(config.mirror.concurrency);
  const limit = pLimit(config.mirror.concurrency);
  try {
    await Promise.all(
      versions.map(([key, served]) =>
        limit(async () => {
          const { module, version, checksum } = served.entry;
          try {
            const { source } = await fetchArchive(
              {
                module,
                version,
                checksum,
                keep: (file) => registry.store.put(module, version, checksum, file),
              },
              {
                sources: sourcesFor(served),
                tmpDir: tmp.path,
                dispatcherFor: agents.dispatcherFor,
                retries: config.mirror.retries,
                limits: downloadLimits(config),
                onRetry: (label, attempt, reason) => log.warn(`${label}: retry ${attempt}: ${reason}`),
              },
            );
            downloaded.set(key, source);
          } catch (error) {
            failed.set(key, describeError(error));
          }
        }),
      ),
    );
  } finally {
    await agents.close();
    await tmp.remove();
  }
  return downloaded;
}

/** provenance.json describes served versions only: records of dropped ones go. */
async function pruneProvenance(registry: Registry, desired: Map<string, IndexEntry[]>): Promise<void> {
  const file = registry.layout.provenanceFile;
  const provenance = await readProvenance(file);
  const served = new Set<string>();
  for (const entries of desired.values()) for (const e of entries) served.add(moduleKey(e.module, e.version));
  const kept = new Map([...provenance].filter(([key]) => served.has(key)));
  if (kept.size !== provenance.size) await writeProvenance(file, kept);
}
