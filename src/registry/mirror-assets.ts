import pLimit from 'p-limit';
import { type AssetPackage, describeAssetPackage } from '../core/asset-path.js';
import { describeError } from '../core/errors.js';
import { moduleKey } from '../core/module-name.js';
import { type AssetStore, packageKey } from '../store/asset-store.js';
import { fetchAsset } from '../upstream/asset-fetch.js';
import { createSourceAgents } from '../upstream/http-agent.js';
import type { UpstreamSource } from '../upstream/upstream-source.js';
import { readExecutablePackages } from './executable-packages.js';
import type { Registry } from './registry.js';
import type { PlannedVersion } from './served-plan.js';
import { downloadLimits } from './source-indexes.js';

/** What `mirror` did about prebuilt wasm tools. */
export interface AssetSummary {
  /** Executable packages found in the versions looked at this run. */
  packages: number;
  /** Assets fetched and verified this run. */
  stored: number;
  /** Packages the source has no asset for (404), this run or remembered from an earlier one. */
  absent: number;
  failed: number;
  bytes: number;
  failures: Array<{ package: string; error: string }>;
}

export interface AssetMirrorJob {
  /** The served versions whose archives are here; each one's winning source is asked. */
  versions: PlannedVersion[];
  upstreams: ReadonlyMap<string, UpstreamSource>;
  tmpDir: string;
  warn(message: string): void;
  signal?: AbortSignal;
}

/**
 * Fetches the prebuilt wasm of every executable package of `versions` from the source whose
 * line won, reading the packages from the stored archive. A version whose packages were all
 * settled before (stored or 404) is not looked at again: `.assets.json` in its folder says so.
 * A failure is reported and leaves the version unsettled, so the next mirror tries again.
 */
export async function mirrorAssets(registry: Registry, job: AssetMirrorJob): Promise<AssetSummary> {
  const store = registry.assets;
  const { concurrency } = registry.config.mirror;
  const agents = createSourceAgents(concurrency);
  const limit = pLimit(concurrency);
  const summary: AssetSummary = { packages: 0, stored: 0, absent: 0, failed: 0, bytes: 0, failures: [] };
  const withoutExecutables = await store.readWithoutExecutables();
  let learnt = false;
  const markWithoutExecutables = (key: string, checksum: string) => {
    withoutExecutables.set(key, checksum);
    learnt = true;
  };
  try {
    await Promise.all(
      job.versions.map((item) =>
        limit(async () => {
          const upstream = job.upstreams.get(item.winner.source);
          // Published here, from a source without HTTP (bundle, git), or interrupted: nothing to fetch.
          if (!upstream?.hasHttpService || job.signal?.aborted) return;
          await mirrorVersion(registry, store, item, upstream, {
            summary,
            tmpDir: job.tmpDir,
            dispatcher: agents.dispatcherFor(upstream),
            warn: job.warn,
            withoutExecutables,
            markWithoutExecutables,
          });
        }),
      ),
    );
    if (learnt) await store.writeWithoutExecutables(withoutExecutables);
  } finally {
    await agents.close();
  }
  summary.failures.sort((a, b) => a.package.localeCompare(b.package));
  return summary;
}

interface VersionWork {
  summary: AssetSummary;
  tmpDir: string;
  dispatcher: ReturnType<ReturnType<typeof createSourceAgents>['dispatcherFor']>;
  warn(message: string): void;
  /** module@version -> checksum of archives read and found without executables (shared). */
  withoutExecutables: ReadonlyMap<string, string>;
  markWithoutExecutables(key: string, checksum: string): void;
}

async function mirrorVersion(
  registry: Registry,
  store: AssetStore,
  item: PlannedVersion,
  upstream: UpstreamSource,
  work: VersionWork,
): Promise<void> {
  const { module, version } = item;
  const { checksum } = item.winner.entry;
  const key = moduleKey(module, version);
  if (work.withoutExecutables.get(key) === checksum) return;
  const record = await store.readRecord(module, version);
  if (record?.complete) return;
  let paths: string[][];
  try {
    paths = await registry.store.withLocalFile(item.winner.entry, registry.layout.tmpDir, (file) => {
      if (!file) throw new Error('the archive is not stored');
      return readExecutablePackages(file);
    });
  } catch (error) {
    work.warn(`${key}: cannot read its packages for prebuilt wasm: ${describeError(error)}`);
    return;
  }
  // Most versions: remembered in one file, no folder each.
  if (paths.length === 0) {
    work.markWithoutExecutables(key, checksum);
    return;
  }
  const absent = new Set(record?.absent ?? []);
  let complete = true;
  for (const packagePath of paths) {
    const pkg: AssetPackage = { module, version, packagePath };
    work.summary.packages++;
    if (await store.has(pkg)) continue;
    if (absent.has(packageKey(pkg))) {
      work.summary.absent++;
      continue;
    }
    try {
      const fetched = await fetchAsset(upstream, pkg, {
        store,
        tmpDir: work.tmpDir,
        dispatcher: work.dispatcher,
        limits: downloadLimits(registry.config),
        retries: registry.config.mirror.retries,
      });
      if (fetched.result === 'absent') {
        absent.add(packageKey(pkg));
        work.summary.absent++;
      } else {
        work.summary.stored++;
        work.summary.bytes += fetched.bytes;
      }
    } catch (error) {
      complete = false;
      const message = upstream.redact(describeError(error));
      work.summary.failed++;
      work.summary.failures.push({ package: describeAssetPackage(pkg), error: message });
      work.warn(`prebuilt wasm ${describeAssetPackage(pkg)}: ${message}`);
    }
  }
  await store.writeRecord(module, version, {
    complete,
    absent: [...absent].sort(),
    checked_at: new Date().toISOString(),
  });
}
