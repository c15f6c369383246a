import { RegistryError } from '../core/errors.js';
import { formatIndexLine } from '../core/index-line-format.js';
import { hasLoneSurrogate } from '../core/json-text.js';
import { moduleMatcher } from '../core/module-glob.js';
import { isValidModuleName } from '../core/module-name.js';
import { type IndexEntry, parseIndexLine } from '../index/index-file.js';
import { withRegistryLock } from '../registry/lock.js';
import { moduleView, refreshServedModule } from '../registry/module-refresh.js';
import type { Registry } from '../registry/registry.js';
import type { IndexLog } from '../registry/source-indexes.js';

/** What to change on a version's line (the predecessor's convention, PROTOCOL.md 5b). */
export type VersionMark =
  | { kind: 'yank'; reason?: string }
  | { kind: 'unyank' }
  /** An empty message takes the deprecation away. */
  | { kind: 'deprecate'; message: string };

export interface MarkRequest {
  module: string;
  /** Undefined: every served version of the module (deprecate only). */
  version?: string;
  mark: VersionMark;
  /** Who asks (a token's name, or "local"): in the commit. */
  by: string;
  /** The asker's module globs; undefined: any module (the CLI on this machine). */
  scope?: readonly string[];
}

export interface MarkOutcome {
  module: string;
  /** The versions whose line changed. */
  versions: string[];
  commit?: string;
}

/**
 * Yanks, unyanks or deprecates versions by writing their line, changed, into the hosted index:
 * a published version's line is rewritten there, an upstream version gets the upstream's line
 * (same checksum, so the same archive) with the mark, and the hosted source's priority makes that
 * line the served one. Archives stay downloadable: a yanked version still builds what locked it.
 */
export async function markVersions(
  registry: Registry,
  request: MarkRequest,
  log: IndexLog,
): Promise<MarkOutcome> {
  const { module, version, mark } = request;
  if (!isValidModuleName(module)) throw new RegistryError('INVALID', `"${module}" is not a module name`);
  if (version === undefined && mark.kind !== 'deprecate') {
    throw new RegistryError('USAGE', `${mark.kind} needs MODULE@VERSION`);
  }
  const text = mark.kind === 'yank' ? mark.reason : mark.kind === 'deprecate' ? mark.message : undefined;
  if (text !== undefined && hasLoneSurrogate(text)) {
    throw new RegistryError('INVALID', 'the text has a lone surrogate, which JSON parsers refuse');
  }
  if (request.scope && !moduleMatcher(request.scope)(module)) {
    throw new RegistryError('FORBIDDEN', `"${request.by}" may not change ${module}`, {
      hint: `its token may publish: ${request.scope.join(', ') || 'nothing (a read-only token)'}`,
    });
  }
  const what = `${mark.kind} ${module}`;
  return withRegistryLock(
    registry.layout.lockTarget,
    what,
    { brief: true, waitForBriefMs: 60_000 },
    async (lock) => {
      const merged = await moduleView(registry, module, { info: () => undefined, warn: () => undefined });
      const known = merged.versions(module);
      if (known.length === 0) throw new RegistryError('NOT_FOUND', `no source lists ${module}`);
      const targets = version === undefined ? known : [version];
      if (version !== undefined && !known.includes(version)) {
        throw new RegistryError('NOT_FOUND', `no source lists ${module}@${version}`);
      }
      const head = await registry.hosted.head();
      const published = head
        ? (await registry.hosted.readModule(head, module)).modules.get(module)
        : undefined;
      const hosted = new Map(published ?? []);
      const changed: string[] = [];
      for (const target of targets) {
        const current = merged.winner(module, target)?.entry as IndexEntry;
        const next = marked(current, mark);
        if (next.raw === current.raw) continue;
        hosted.set(target, next);
        changed.push(target);
      }
      if (changed.length === 0) return { module, versions: [] };
      lock.assertHeld();
      const which = version === undefined ? `${changed.length} versions` : version;
      await registry.hosted.writeModule(
        module,
        [...hosted.values()],
        `${what}\n\n${which} by ${request.by}.\n`,
      );
      const served = await refreshServedModule(registry, lock, module, `${what}@${which}`, log);
      return { module, versions: changed, commit: served.commit };
    },
  );
}

/** The line with the mark applied, every other key as it was. */
function marked(entry: IndexEntry, mark: VersionMark): IndexEntry {
  const fields = JSON.parse(entry.raw) as Record<string, unknown>;
  const before = JSON.stringify(fields);
  if (mark.kind === 'yank') {
    fields.yanked = true;
    if (mark.reason) fields.yanked_reason = mark.reason;
  } else if (mark.kind === 'unyank') {
    delete fields.yanked;
    delete fields.yanked_reason;
  } else if (mark.message === '') {
    delete fields.deprecated;
  } else {
    fields.deprecated = mark.message;
  }
  if (JSON.stringify(fields) === before) return entry;
  const next = parseIndexLine(entry.module, formatIndexLine(fields));
  if (typeof next === 'string')
    throw new RegistryError('INVALID', `cannot mark ${entry.module}@${entry.version}: ${next}`);
  return next;
}
