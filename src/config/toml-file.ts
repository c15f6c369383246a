import { readFile } from 'node:fs/promises';
import * as TOML from '@decimalturn/toml-patch';
import type { z } from 'zod';
import { RegistryError } from '../core/errors.js';
import { writeFileAtomic } from '../fs/atomic-write.js';
import { configNotices } from './config-notices.js';
import { formatPath, locateKey } from './key-location.js';
import { keySuggestion } from './key-suggestion.js';
import { hoistDefaultSource } from './legacy-keys.js';
import { ConfigObjectSchema, ConfigSchema, type RegistryConfig } from './schema.js';

/**
 * `registry.toml` on disk. We keep the text and the raw (un-defaulted) table together so that a
 * change is patched into the user's text: comments, blank lines and key order survive, and
 * defaults never get written out just because we read the file.
 */
export interface ConfigFile {
  path: string;
  text: string;
  raw: Record<string, unknown>;
  config: RegistryConfig;
  /** Things that load but deserve a word (config-notices.ts). */
  notices: string[];
}

export async function loadConfigFile(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new RegistryError('CONFIG', `no registry.toml at ${path}`, {
        hint: 'run `moonbit-registry init` first, or pass -d/--dir with a registry folder',
      });
    }
    throw error;
  }
  return parseConfigText(path, text);
}

export function parseConfigText(path: string, text: string): ConfigFile {
  let raw: Record<string, unknown>;
  try {
    raw = TOML.parse(text) as Record<string, unknown>;
  } catch (error) {
    const { line, column } = syntaxErrorPosition(text, error);
    const reason = lastLine((error as Error).message);
    const where = line ? `line ${line}${column ? `, column ${column}` : ''}` : 'unknown line';
    throw new RegistryError('CONFIG', `${path}: invalid TOML at ${where}${reason ? `: ${reason}` : ''}`);
  }
  const config = validateConfig(path, text, raw);
  return { path, text, raw, config, notices: notices(path, text, raw, config) };
}

function notices(path: string, text: string, raw: Record<string, unknown>, config: RegistryConfig): string[] {
  return configNotices(path, text, raw, ConfigObjectSchema.parse(hoistDefaultSource(raw)), config);
}

export function validateConfig(path: string, text: string, raw: Record<string, unknown>): RegistryConfig {
  const result = ConfigSchema.safeParse(hoistDefaultSource(raw));
  if (result.success) return result.data;
  const issue = result.error.issues[0] as z.core.$ZodIssue;
  // An unknown key is reported on its table; point at the key itself.
  const keyPath =
    issue.code === 'unrecognized_keys' && issue.keys[0] ? [...issue.path, issue.keys[0]] : issue.path;
  const key = formatPath(keyPath);
  const line = locateKey(text, keyPath);
  const suggestion =
    issue.code === 'unrecognized_keys' && issue.keys[0]
      ? keySuggestion(issue.path, issue.keys[0])
      : undefined;
  throw new RegistryError(
    'CONFIG',
    `${path}${line ? ` line ${line}` : ''}: ${key ? `${key}: ` : ''}${issue.message}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
  );
}

/**
 * Applies `change` to a copy of the raw table; if anything changed, validates it and writes the
 * patched text atomically. An edit that changes nothing leaves the file untouched. The new
 * text is parsed back and must say exactly what was intended, so a patch that would drop
 * content (toml-patch loses sub-tables such as [sources.auth] when a [[sources]] item is
 * removed, which is why removed items are cut out of the text first) is never written.
 */
export async function updateConfigFile<T>(
  file: ConfigFile,
  change: (raw: Record<string, unknown>) => T,
): Promise<{ file: ConfigFile; changed: boolean; result: T }> {
  const raw = structuredClone(file.raw);
  const result = change(raw);
  if (sameData(raw, file.raw)) return { file, changed: false, result };
  const config = validateConfig(file.path, file.text, raw);
  const text = patchText(file.text, file.raw, raw);
  if (!sameData(TOML.parse(text), raw)) {
    throw new RegistryError(
      'CONFIG',
      `${file.path}: cannot apply this change without losing content; nothing was written`,
      {
        hint: 'edit registry.toml by hand',
      },
    );
  }
  await writeFileAtomic(file.path, text);
  return {
    file: { path: file.path, text, raw, config, notices: notices(file.path, text, raw, config) },
    changed: true,
    result,
  };
}

/**
 * The user's text changed to say `after`. toml-patch cannot start an array of tables that the
 * text does not have yet (the first `[[sources]]`): such arrays are appended as new blocks.
 */
function patchText(text: string, before: Record<string, unknown>, after: Record<string, unknown>): string {
  const isNew = (key: string) => before[key] === undefined;
  const started = Object.keys(after).filter(
    (key) => isNew(key) && Array.isArray(after[key]) && (after[key] as unknown[]).length > 0,
  );
  // New top-level values (default_source) go above the first table and its comment, where a
  // reader looks for them; toml-patch would put them between that comment and its table.
  const scalars = Object.keys(after).filter(
    (key) => isNew(key) && (typeof after[key] !== 'object' || after[key] === null),
  );
  const rest = Object.fromEntries(
    Object.entries(after).filter(([key]) => !started.includes(key) && !scalars.includes(key)),
  );
  const cut = removedTables(before, after).reduce(cutTable, withoutRemovedItems(text, before, after));
  let out = TOML.patch(
    withTopLevel(
      cut,
      scalars.map((key) => TOML.stringify({ [key]: after[key] }).trim()),
    ),
    {
      ...rest,
      ...Object.fromEntries(scalars.map((key) => [key, after[key]])),
    },
  );
  for (const key of started) out = `${out.trimEnd()}\n\n${TOML.stringify({ [key]: after[key] })}`;
  // toml-patch writes \n: a file written with \r\n keeps them throughout.
  return text.includes('\r\n') ? out.replace(/\r?\n/g, '\r\n') : out;
}

/** Inserts `key = value` lines before the first table header and the comments right above it. */
function withTopLevel(text: string, lines: string[]): string {
  if (lines.length === 0) return text;
  const all = text.split('\n');
  let at = all.findIndex((line) => /^\s*\[/.test(line));
  if (at < 0) at = all.length;
  while (at > 0 && /^\s*#/.test(all[at - 1] as string)) at--;
  all.splice(at, 0, ...lines, ...(at < all.length ? [''] : []));
  return all.join('\n');
}

/** Paths of the tables (not arrays) that `before` has and `after` no longer has: ['upstream']. */
function removedTables(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
  prefix: string[] = [],
): string[][] {
  const isTable = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  return Object.entries(before).flatMap(([key, value]) => {
    if (!isTable(value)) return [];
    const now = after[key];
    if (now === undefined) return [[...prefix, key]];
    return isTable(now) ? removedTables(value, now, [...prefix, key]) : [];
  });
}

/**
 * Cuts a removed table written as `[a.b]` out of the text, with its sub-tables, but not the
 * comment block and blank lines right above the next table (toml-patch takes those along).
 * A table written inline is left to toml-patch.
 */
function cutTable(text: string, path: string[]): string {
  const lines = text.split('\n');
  const headerPath = (line: string) =>
    /^\s*\[\s*([^\][]+?)\s*\]\s*(#.*)?$/
      .exec(line.replace(/\r$/, ''))?.[1]
      ?.split('.')
      .map((part) => part.trim().replace(/^"(.*)"$/, '$1'));
  const isHeader = (line: string) => /^\s*\[/.test(line);
  const start = lines.findIndex((line) => headerPath(line)?.join('.') === path.join('.'));
  if (start < 0) return text;
  let end = start + 1;
  const inside = (line: string) => {
    const p = headerPath(line);
    return p !== undefined && p.length > path.length && path.every((part, i) => p[i] === part);
  };
  while (end < lines.length && (!isHeader(lines[end] as string) || inside(lines[end] as string))) end++;
  if (end < lines.length) {
    const isComment = (i: number) => /^\s*#/.test(lines[i] as string);
    while (end > start + 1 && isComment(end - 1)) end--;
    while (end > start + 1 && (lines[end - 1] as string).trim() === '') end--;
  }
  lines.splice(start, end - start);
  return lines.join('\n');
}

/**
 * Cuts the blocks of array-of-tables items that `after` no longer has (a removed
 * `[[sources]]`, its sub-tables and the comment right above it) out of the text.
 */
function withoutRemovedItems(
  text: string,
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): string {
  let out = text;
  for (const [key, old] of Object.entries(before)) {
    const now = after[key];
    if (!Array.isArray(old) || !Array.isArray(now) || now.length >= old.length) continue;
    const removed: number[] = [];
    let j = 0;
    old.forEach((item, i) => {
      if (j < now.length && sameData(item, now[j])) j++;
      else removed.push(i);
    });
    for (const index of removed.reverse()) out = cutArrayItem(out, key, index);
  }
  return out;
}

/** Same data, whatever the key order or prototype (toml-patch's tables are not plain objects). */
function sameData(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : v,
  );
}

function cutArrayItem(text: string, key: string, index: number): string {
  const lines = text.split('\n');
  const header = new RegExp(`^\\s*\\[\\[\\s*${key}\\s*\\]\\]`);
  const ownTable = new RegExp(`^\\s*\\[\\s*${key}\\.`);
  const starts = lines.flatMap((line, i) => (header.test(line) ? [i] : []));
  let start = starts[index];
  if (start === undefined) return text;
  let end = start + 1;
  while (end < lines.length && !(/^\s*\[/.test(lines[end] as string) && !ownTable.test(lines[end] as string)))
    end++;
  const isComment = (i: number) => /^\s*#/.test(lines[i] as string);
  while (start > 0 && isComment(start - 1)) start--;
  if (end < lines.length) {
    // The comment right above the next table is that table's; blank lines belong to the layout.
    while (end > start + 1 && isComment(end - 1)) end--;
    while (end > start + 1 && (lines[end - 1] as string).trim() === '') end--;
  }
  lines.splice(start, end - start);
  const blank = (i: number) => lines[i]?.replace(/\r$/, '').trim() === '';
  if (start > 0 && blank(start - 1) && blank(start)) lines.splice(start, 1);
  return lines.join('\n');
}

/**
 * Where a syntax error is, 1-based. toml-patch gives a 1-based line and a 0-based column, and
 * reports an unclosed `[table` on the line after it.
 */
function syntaxErrorPosition(text: string, error: unknown): { line?: number; column?: number } {
  const { line, column } = error as { line?: unknown; column?: unknown };
  if (typeof line !== 'number') return {};
  const previous = text.split('\n')[line - 2];
  if (column === 0 && previous !== undefined && /^\s*\[[^\]]*$/.test(previous)) return { line: line - 1 };
  return { line, column: typeof column === 'number' ? column + 1 : undefined };
}

/** toml-patch puts the reason on the last line, after the quoted source and a caret. */
function lastLine(text: string): string {
  const lines = text.split('\n').map((line) => line.trim());
  return lines.filter(Boolean).pop() ?? '';
}
