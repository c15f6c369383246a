import { normalizeChecksum } from '../core/checksum.js';
import { nestsDeeperThan } from '../core/json-text.js';
import { quoteForLog } from '../core/log-text.js';
import { isValidModuleName } from '../core/module-name.js';
import { isValidVersion } from '../core/version.js';

/**
 * One line of a module's `.index` file (JSON Lines, PROTOCOL.md 3). `raw` is the line exactly as
 * the source wrote it: the served index copies it byte for byte, unknown fields included.
 */
export interface IndexEntry {
  module: string;
  version: string;
  checksum: string;
  deps: Dependency[];
  raw: string;
  /** The line says `"yanked": true`: `mirror` skips it unless a dependency needs it. */
  yanked?: boolean;
}

export interface Dependency {
  module: string;
  /** Usually "x.y.z": at least this version, in the same compatibility set (see core/version). */
  requirement: string;
}

export type IndexWarning = (message: string) => void;

/** serde_json's recursion limit: `moon` cannot read a line nested deeper. */
const SERDE_JSON_MAX_DEPTH = 128;

/**
 * Reads an index file as `moon` does: leniently (a bad line is skipped with a warning) and with
 * the last line for a version winning. The map keeps the order of each version's last line.
 */
export function parseIndexFile(module: string, text: string, warn?: IndexWarning): Map<string, IndexEntry> {
  const entries = new Map<string, IndexEntry>();
  const lines = text.split('\n');
  parseLines(module, lines, 0, lines.length, entries, warn);
  return entries;
}

/**
 * parseIndexFile, awaiting `turn` every few hundred lines so that a file of 100k lines does not
 * hold the event loop (see core/event-loop-turns.ts).
 */
export async function parseIndexFileInTurns(
  module: string,
  text: string,
  turn: () => Promise<void>,
  warn?: IndexWarning,
): Promise<Map<string, IndexEntry>> {
  const entries = new Map<string, IndexEntry>();
  const lines = text.split('\n');
  const step = 256;
  for (let from = 0; from < lines.length; from += step) {
    parseLines(module, lines, from, Math.min(from + step, lines.length), entries, warn);
    await turn();
  }
  return entries;
}

function parseLines(
  module: string,
  lines: string[],
  from: number,
  to: number,
  entries: Map<string, IndexEntry>,
  warn?: IndexWarning,
): void {
  for (let i = from; i < to; i++) {
    const raw = lines[i] as string;
    if (raw.trim() === '') continue;
    const entry = parseIndexLine(module, raw);
    if (typeof entry === 'string') {
      warn?.(`${module}: line ${i + 1} skipped: ${entry}`);
      continue;
    }
    entries.delete(entry.version);
    entries.set(entry.version, entry);
  }
}

/** The entry, or a reason why the line cannot be used. */
export function parseIndexLine(module: string, raw: string): IndexEntry | string {
  // serde_json (`moon`) refuses such a line; JSON.parse would spend seconds building it.
  if (nestsDeeperThan(raw, SERDE_JSON_MAX_DEPTH)) return `nests deeper than ${SERDE_JSON_MAX_DEPTH} levels`;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return 'not valid JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const record = value as Record<string, unknown>;
  // Upstream text in a warning: quoted and shortened (see quoteForLog).
  if (record.name !== module) return `name ${quoteForLog(record.name)} does not match the file's module`;
  const version = record.version;
  if (typeof version !== 'string' || !isValidVersion(version))
    return `invalid version ${quoteForLog(version)}`;
  const checksum = normalizeChecksum(record.checksum);
  if (checksum === undefined) return `invalid checksum for ${version}`;
  const entry: IndexEntry = { module, version, checksum, deps: parseDeps(record.deps), raw };
  if (record.yanked === true) entry.yanked = true;
  return entry;
}

/** `deps` maps a module to "x.y.z" or `{ version, alias, path }`; path-only entries carry no version. */
function parseDeps(value: unknown): Dependency[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  const deps: Dependency[] = [];
  for (const [module, spec] of Object.entries(value as Record<string, unknown>)) {
    const requirement =
      typeof spec === 'string'
        ? spec
        : typeof spec === 'object' && spec !== null
          ? (spec as Record<string, unknown>).version
          : undefined;
    if (typeof requirement === 'string' && requirement !== '' && isValidModuleName(module)) {
      deps.push({ module, requirement });
    }
  }
  return deps;
}

/** Serializes entries as an index file: one raw line each, newline-terminated. */
export function renderIndexFile(entries: Iterable<IndexEntry>): string {
  let text = '';
  for (const entry of entries) text += `${entry.raw}\n`;
  return text;
}
