import { RegistryError } from '../core/errors.js';
import { formatIndexLine, indexTimestamp } from '../core/index-line-format.js';
import { moduleMatcher } from '../core/module-glob.js';
import { foldedPath } from '../core/portable-path.js';
import { type IndexEntry, parseIndexLine } from '../index/index-file.js';
import { ServedIndex } from '../index/served-index.js';
import { withRegistryLock } from '../registry/lock.js';
import { refreshServedModule } from '../registry/module-refresh.js';
import type { Registry } from '../registry/registry.js';
import type { IndexLog } from '../registry/source-indexes.js';
import { type ArchiveLimits, checkModuleArchive, type ModuleArchive } from './module-archive.js';

export interface PublishRequest {
  /** The module zip as uploaded or packed. */
  bytes: Buffer;
  /** Who publishes (a token's name, or "local" for the CLI on this machine): in the commit. */
  publisher: string;
  /** The publisher's module globs; undefined: any module (the registry's own operator). */
  scope?: readonly string[];
  /** Check everything and make the line, but store nothing. */
  dryRun?: boolean;
}

export interface PublishOutcome {
  module: string;
  version: string;
  checksum: string;
  /** published: new; unchanged: the same bytes were published before; checked: a dry run. */
  result: 'published' | 'unchanged' | 'checked';
  /** The index line of this version. */
  line: string;
  /** The served index commit after the publish (none for a dry run or unchanged). */
  commit?: string;
}

/** The `[hosted]` limits for one upload. */
export function archiveLimits(registry: Pick<Registry, 'config'>): ArchiveLimits {
  const { hosted } = registry.config;
  return {
    maxBytes: hosted.max_archive_size,
    maxEntries: hosted.max_entries,
    maxUncompressed: hosted.max_uncompressed_size,
  };
}

/**
 * Checks a module zip and makes its index line: moon.mod.json's keys as written (as
 * mooncakes.io writes them), then `checksum` and `created_at` (now, or the git source's tag
 * commit time), which overwrite any it had.
 */
export async function preparePublish(
  bytes: Buffer,
  limits: ArchiveLimits,
  createdAt = new Date(),
): Promise<{ archive: ModuleArchive; entry: IndexEntry }> {
  const archive = await checkModuleArchive(bytes, limits);
  const { checksum: _c, created_at: _t, ...manifest } = archive.manifest;
  const line = formatIndexLine({
    ...manifest,
    checksum: archive.checksum,
    created_at: indexTimestamp(createdAt),
  });
  const entry = parseIndexLine(archive.module, line);
  if (typeof entry === 'string') throw new RegistryError('INVALID', `bad archive: ${entry}`);
  return { archive, entry };
}

/**
 * Publishes a module zip to the hosted source: checks it, stores the archive, appends its line
 * to the hosted index (one commit, `update <module>`), and republishes the served indexes so the
 * next `moon update` sees it. Checked in this order: the archive (INVALID, TOO_LARGE), the
 * publisher's scope (FORBIDDEN), then what is already published (the same bytes: unchanged;
 * other bytes: CONFLICT). A version only an upstream has is no conflict: publishing it is how a
 * patched version overrules the public one. Under the registry lock, so two publishes of one
 * version cannot both land; anything that fails leaves the indexes as they were.
 */
export async function publishModule(
  registry: Registry,
  request: PublishRequest,
  log: IndexLog,
): Promise<PublishOutcome> {
  const { archive, entry } = await preparePublish(request.bytes, archiveLimits(registry));
  const { module, version, checksum } = archive;
  const line = entry.raw;
  if (request.scope && !moduleMatcher(request.scope)(module)) {
    throw new RegistryError('FORBIDDEN', `"${request.publisher}" may not publish ${module}`, {
      hint: `its token may publish: ${request.scope.join(', ') || 'nothing (a read-only token)'}`,
    });
  }
  if (request.dryRun) return { module, version, checksum, result: 'checked', line };

  const { hosted, store, layout } = registry;
  const what = `publish ${module}@${version}`;
  return withRegistryLock(layout.lockTarget, what, { brief: true, waitForBriefMs: 60_000 }, async (lock) => {
    const head = await hosted.head();
    const published = head ? (await hosted.readModule(head, module)).modules.get(module) : undefined;
    const before = published?.get(version);
    if (before && before.checksum !== checksum) {
      throw new RegistryError(
        'CONFLICT',
        `${module}@${version} is already published with other bytes (checksum ${before.checksum.slice(0, 12)}…)`,
        { hint: 'versions are immutable: publish a new version' },
      );
    }
    if (!published) await refuseCaseTwin(registry, module);
    // The archive first: a line is never published before the bytes it names are stored. The
    // same bytes again also bring back an archive that was lost (verify says to do just that).
    const restored = !(await store.has(module, version, checksum));
    if (restored) await store.putBytes(module, version, checksum, request.bytes);
    if (before) {
      // A restored archive makes its version servable again (a rebuild left it out meanwhile).
      if (restored) await refreshServedModule(registry, lock, module, `${what} (archive restored)`, log);
      return { module, version, checksum, result: 'unchanged', line: before.raw };
    }
    lock.assertHeld();
    await hosted.writeModule(
      module,
      [...(published?.values() ?? []), entry],
      `update ${module}\n\n${version} published by ${request.publisher}.\n`,
    );
    const served = await refreshServedModule(registry, lock, module, what, log);
    return { module, version, checksum, result: 'published', line, commit: served.commit };
  });
}

/**
 * A new module whose name differs from a served one only in case or Unicode form would share its
 * index file on macOS and Windows checkouts (`user/Company/app.index` is `user/company/app.index`
 * there): every such client's index would break.
 */
async function refuseCaseTwin(registry: Registry, module: string): Promise<void> {
  const folded = foldedPath(module);
  const listed = [
    ...(await registry.servedIndex.moduleNames()),
    ...(await new ServedIndex(registry.layout.proxyIndexDir).moduleNames().catch(() => [])),
    ...(await registry.hosted.moduleNames()),
  ];
  const twin = listed.find((name) => name !== module && foldedPath(name) === folded);
  if (twin) {
    throw new RegistryError(
      'CONFLICT',
      `${module} differs from the served module ${twin} only in case or Unicode form`,
      {
        hint: `publish it as ${twin}, or under a name of its own`,
      },
    );
  }
}
