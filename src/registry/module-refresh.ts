import { join } from 'node:path';
import { moduleKey } from '../core/module-name.js';
import { compareVersions } from '../core/version.js';
import { pathExists } from '../fs/path-exists.js';
import type { IndexEntry } from '../index/index-file.js';
import type { MergedCatalog } from '../index/merged-catalog.js';
import { type PublishResult, ServedIndex } from '../index/served-index.js';
import { readModuleCatalog, type SourceCatalog } from '../index/source-catalog.js';
import type { RegistryLock } from './lock.js';
import { readProvenance, writeProvenance } from './provenance.js';
import type { Registry } from './registry.js';
import { planServedVersions, servedLine } from './served-plan.js';
import { enabledUpstreams, type IndexLog } from './source-indexes.js';
import { SourcePolicy, shadowWarning } from './source-policy.js';

/**
 * After a publish, yank or deprecate of `module` (the caller holds the lock): that module's lines
 * in the served index, and in the pull-through index when there is one, follow at once. Only
 * that module's index file is read from each source and written back, so the cost does not grow
 * with the size of the registry; the rules are the ones a whole rebuild applies (the source
 * policy, the served plan).
 */
export async function refreshServedModule(
  registry: Registry,
  lock: RegistryLock,
  module: string,
  title: string,
  log: IndexLog,
): Promise<PublishResult> {
  const merged = await moduleView(registry, module, log);
  const plan = await planServedVersions(registry, merged, new Set());

  // Mirror mode's index: the versions whose archive is here, each with its winning line.
  const served = plan.flatMap((p) => {
    const line = servedLine(p);
    return line ? [{ version: p.version, line }] : [];
  });
  const entries = (lines: IndexEntry[]) => lines.sort((a, b) => compareVersions(a.version, b.version));
  lock.assertHeld();
  const result = await registry.servedIndex.update(
    new Map([[module, entries(served.map((s) => s.line.entry))]]),
    `${title}\n`,
  );
  const provenance = await readProvenance(registry.layout.provenanceFile);
  for (const key of [...provenance.keys()]) if (key.startsWith(`${module}@`)) provenance.delete(key);
  for (const { version, line } of served) {
    provenance.set(moduleKey(module, version), { source: line.source, checksum: line.entry.checksum });
  }
  await writeProvenance(registry.layout.provenanceFile, provenance);

  // Pull-through's index: every version any source lists, with the winner's line.
  const proxy = registry.layout.proxyIndexDir;
  if (await pathExists(join(proxy, 'HEAD'))) {
    const winners = merged.versions(module).flatMap((v) => merged.winner(module, v)?.entry ?? []);
    await new ServedIndex(proxy).update(new Map([[module, entries(winners)]]), `${title}\n`);
  }
  return result;
}

/**
 * Every source's lines for one module (their last fetched indexes and the published ones),
 * merged by the source policy: the whole-registry view, narrowed to that module.
 */
export async function moduleView(registry: Registry, module: string, log: IndexLog): Promise<MergedCatalog> {
  const catalogs: SourceCatalog[] = [];
  for (const upstream of enabledUpstreams(registry.config, registry.layout)) {
    const commit = await upstream.fetchedCommit();
    if (commit) catalogs.push(await readModuleCatalog(upstream.name, upstream.gitDir, commit, module));
  }
  const hostedHead = await registry.hosted.head();
  if (hostedHead) catalogs.push(await registry.hosted.readModule(hostedHead, module));
  return new SourcePolicy(registry.config).merge(catalogs, (attempt) => log.warn(shadowWarning(attempt)));
}
