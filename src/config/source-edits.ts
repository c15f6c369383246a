import { trimTrailingSlash } from '../core/archive-url.js';
import { RegistryError } from '../core/errors.js';
import { isPresetName, PRESETS } from './presets.js';
import { SOURCE_NAME_PATTERN, SOURCE_TYPES, type SourceType } from './schema.js';

/**
 * The rules of `moonbit-registry source ...`, as edits of the raw TOML table (so that only the
 * touched keys change in the user's file). Each returns a message for the user or throws.
 */

type RawTable = Record<string, unknown>;

export interface NewSource {
  name: string;
  url?: string;
  indexUrl?: string;
  priority?: number;
  type?: string;
  packageUrlPattern?: string;
  preset?: string;
  /** A git source: the repository, and which tags and folder make the module. */
  git?: string;
  refPattern?: string;
  path?: string;
}

function rawSources(raw: RawTable): RawTable[] {
  if (raw.sources === undefined) raw.sources = [];
  if (!Array.isArray(raw.sources))
    throw new RegistryError('CONFIG', 'registry.toml: sources must be [[sources]] tables');
  return raw.sources as RawTable[];
}

function requireSource(raw: RawTable, name: string): RawTable {
  const source = rawSources(raw).find((s) => s.name === name);
  if (!source) {
    const known =
      rawSources(raw)
        .map((s) => String(s.name))
        .join(', ') || 'none';
    throw new RegistryError('NOT_FOUND', `unknown source "${name}" (configured: ${known})`);
  }
  return source;
}

/** Adds a source; returns a notice instead when the very same preset source is already there. */
export function addSource(raw: RawTable, request: NewSource): string {
  if (!SOURCE_NAME_PATTERN.test(request.name)) {
    throw new RegistryError('USAGE', `invalid source name "${request.name}"`, {
      hint: 'use letters, digits, "-" and "_", starting with a letter or digit (at most 64)',
    });
  }
  const sources = rawSources(raw);
  const entry = request.git
    ? fromGit(request, sources)
    : request.preset
      ? fromPreset(request)
      : fromFlags(request, sources);
  if (!request.git && (request.refPattern !== undefined || request.path !== undefined)) {
    throw new RegistryError('USAGE', '--ref-pattern and --path go with --git');
  }
  if (request.preset) {
    const same = sources.find((s) => s.url === entry.url && s.index_url === entry.index_url);
    if (same)
      return `source "${String(same.name)}" is already configured from the ${request.preset} preset; nothing changed`;
  }
  const existing = sources.find((s) => s.name === request.name);
  if (existing) {
    throw new RegistryError('EXISTS', `a source named "${request.name}" already exists`, {
      hint: `remove it first (moonbit-registry source remove ${request.name}) or pick another name`,
    });
  }
  sources.push(entry);
  if (raw.default_source === undefined) raw.default_source = request.name;
  return `added source "${request.name}" (priority ${String(entry.priority)})`;
}

function fromPreset(request: NewSource): RawTable {
  const preset = request.preset as string;
  if (!isPresetName(preset)) {
    throw new RegistryError(
      'USAGE',
      `unknown preset "${preset}" (known: ${Object.keys(PRESETS).join(', ')})`,
    );
  }
  if (request.url || request.indexUrl || request.type) {
    throw new RegistryError('USAGE', '--from-preset cannot be combined with --url, --index-url or --type');
  }
  const values = PRESETS[preset];
  return {
    name: request.name,
    ...values,
    ...(request.priority === undefined ? {} : { priority: request.priority }),
  };
}

function fromGit(request: NewSource, sources: RawTable[]): RawTable {
  if (request.url || request.indexUrl || request.preset || request.packageUrlPattern || request.type) {
    throw new RegistryError(
      'USAGE',
      '--git cannot be combined with --url, --index-url, --type, --package-url-pattern or --from-preset',
    );
  }
  const entry: RawTable = {
    name: request.name,
    type: 'git',
    git_url: request.git,
    enabled: true,
    priority: request.priority ?? defaultPriority(sources),
  };
  if (request.refPattern !== undefined) entry.ref_pattern = request.refPattern;
  if (request.path !== undefined) entry.path = request.path;
  return entry;
}

/** Like Bytesafe: a source added without a priority ranks below every existing one. */
function defaultPriority(sources: RawTable[]): number {
  const lowest = Math.max(0, ...sources.map((s) => (typeof s.priority === 'number' ? s.priority : 100)));
  return sources.length === 0 ? 100 : lowest + 10;
}

function fromFlags(request: NewSource, sources: RawTable[]): RawTable {
  if (!request.url)
    throw new RegistryError('USAGE', 'source add needs --url URL (or --from-preset NAME, or --git URL)');
  const type = request.type ?? 'custom';
  if (!(SOURCE_TYPES as readonly string[]).includes(type)) {
    throw new RegistryError('USAGE', `invalid --type "${type}" (one of: ${SOURCE_TYPES.join(', ')})`);
  }
  if (type === 'bundle') {
    throw new RegistryError(
      'USAGE',
      'bundle sources are made by `moonbit-registry import`, not added by hand',
    );
  }
  if (type === 'git') throw new RegistryError('USAGE', 'git sources are added with --git URL');
  const url = trimTrailingSlash(request.url);
  const entry: RawTable = {
    name: request.name,
    type: type as SourceType,
    url,
    index_url: request.indexUrl ?? `${url}/git/index`,
    index_type: 'git',
    enabled: true,
    priority: request.priority ?? defaultPriority(sources),
  };
  if (request.packageUrlPattern) entry.package_url_pattern = request.packageUrlPattern;
  return entry;
}

export function setDefaultSource(raw: RawTable, name: string): string {
  requireSource(raw, name);
  raw.default_source = name;
  return `default source is now "${name}"`;
}

export function setSourceEnabled(raw: RawTable, name: string, enabled: boolean): string {
  const source = requireSource(raw, name);
  if (source.enabled === enabled || (enabled && source.enabled === undefined)) {
    return `source "${name}" is already ${enabled ? 'enabled' : 'disabled'}; nothing changed`;
  }
  source.enabled = enabled;
  return enabled
    ? `enabled source "${name}"; its versions return to the served index at the next mirror`
    : `disabled source "${name}"; its versions leave the served index at the next mirror (or \`index rebuild\`)`;
}

export function removeSource(raw: RawTable, name: string): string {
  requireSource(raw, name);
  if (raw.default_source === name) {
    throw new RegistryError('USAGE', `cannot remove "${name}": it is the default source`, {
      hint: 'make another source the default first: moonbit-registry source default NAME',
    });
  }
  raw.sources = rawSources(raw).filter((s) => s.name !== name);
  return `removed source "${name}"; its archives stay on disk, its versions leave the served index at the next mirror`;
}
