import { readFile } from 'node:fs/promises';
import * as TOML from '@decimalturn/toml-patch';
import type { z } from 'zod';
import { RegistryError } from '../core/errors.js';
import { writeFileAtomic } from '../fs/atomic-write.js';
import { ConfigSchema, type RegistryConfig } from './schema.js';

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
  return { path, text, raw, config: validateConfig(path, text, raw) };
}

export function validateConfig(path: string, text: string, raw: Record<string, unknown>): RegistryConfig {
  const result = ConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0] as z.core.$ZodIssue;
  // An unknown key is reported on its table; point at the key itself.
  const keyPath =
    issue.code === 'unrecognized_keys' && issue.keys[0] ? [...issue.path, issue.keys[0]] : issue.path;
  const key = formatPath(keyPath);
  const line = locateKey(text, keyPath);
  throw new RegistryError(
    'CONFIG',
    `${path}${line ? ` line ${line}` : ''}: ${key ? `${key}: ` : ''}${issue.message}`,
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
  const text = TOML.patch(withoutRemovedItems(file.text, file.raw, raw), raw);
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
  return { file: { path: file.path, text, raw, config }, changed: true, result };
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
  return lines.join('\n');
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`))
    .join('');
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

/**
 * Best-effort line of a key such as ['sources', 1, 'priority'] or of a table such as
 * ['servr']: follows table headers (counting `[[sources]]` items) and key lines; when the key
 * itself is not written (a default, an inline table) it gives the line of its closest parent.
 */
export function locateKey(text: string, path: ReadonlyArray<PropertyKey>): number | undefined {
  const names = path.filter((p) => typeof p !== 'number').map(String);
  // An item of a top-level array of tables ([[sources]]); a later index is inside a value.
  const item = typeof path[1] === 'number' ? path[1] : undefined;
  const lines = text.split('\n');
  let table: string[] = [];
  let arrayItem = -1;
  let best: { line: number; depth: number } | undefined;
  const consider = (keyPath: string[], line: number) => {
    const inItem = item === undefined || keyPath[0] !== names[0] || arrayItem === item;
    if (!inItem || keyPath.length === 0 || !keyPath.every((part, k) => part === names[k])) return;
    if (!best || keyPath.length > best.depth) best = { line, depth: keyPath.length };
  };
  for (const [i, text] of lines.entries()) {
    const header = /^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/.exec(text);
    if (header) {
      table = (header[2] as string).split('.').map((part) => part.trim().replace(/^"(.*)"$/, '$1'));
      if (header[1] === '[[' && table.join('.') === names[0]) arrayItem++;
      consider(table, i + 1);
      continue;
    }
    const key = /^\s*"?([A-Za-z0-9_-]+)"?\s*=/.exec(text)?.[1];
    if (key) consider([...table, key], i + 1);
  }
  return best?.line;
}

/** toml-patch puts the reason on the last line, after the quoted source and a caret. */
function lastLine(text: string): string {
  const lines = text.split('\n').map((line) => line.trim());
  return lines.filter(Boolean).pop() ?? '';
}
