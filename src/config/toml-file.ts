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
    const { line, column } = error as { line?: number; column?: number };
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
  const key = formatPath(issue.path);
  const line = locateKey(text, issue.path);
  throw new RegistryError(
    'CONFIG',
    `${path}${line ? ` line ${line}` : ''}: ${key ? `${key}: ` : ''}${issue.message}`,
  );
}

/**
 * Applies `change` to a copy of the raw table; if anything changed, validates it and writes the
 * patched text atomically. An edit that changes nothing leaves the file untouched.
 */
export async function updateConfigFile<T>(
  file: ConfigFile,
  change: (raw: Record<string, unknown>) => T,
): Promise<{ file: ConfigFile; changed: boolean; result: T }> {
  const raw = structuredClone(file.raw);
  const result = change(raw);
  if (JSON.stringify(raw) === JSON.stringify(file.raw)) return { file, changed: false, result };
  const config = validateConfig(file.path, file.text, raw);
  const text = TOML.patch(file.text, raw);
  await writeFileAtomic(file.path, text);
  return { file: { path: file.path, text, raw, config }, changed: true, result };
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`))
    .join('');
}

/**
 * Best-effort line of a key such as ['sources', 1, 'priority']: finds the table header (the
 * n-th `[[sources]]` for array items), then the key's line within it.
 */
export function locateKey(text: string, path: ReadonlyArray<PropertyKey>): number | undefined {
  const lines = text.split('\n');
  const header = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?/;
  let tablePath: string[] = [];
  let tableStart = 0;
  const keys = path.filter((p) => typeof p !== 'number').map(String);
  const itemIndex = path.find((p) => typeof p === 'number');
  const wantedTable = keys.length > 1 ? keys.slice(0, -1) : [];
  const wantedKey = keys[keys.length - 1];
  let arrayCount = -1;
  let candidate: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const match = header.exec(line);
    if (match) {
      tablePath = (match[1] as string).split('.').map((s) => s.trim());
      tableStart = i + 1;
      if (line.trim().startsWith('[[') && tablePath.join('.') === wantedTable[0]) arrayCount++;
      continue;
    }
    const inTable =
      tablePath.join('.') === wantedTable.join('.') && (itemIndex === undefined || arrayCount === itemIndex);
    if (inTable && wantedKey && new RegExp(`^\\s*"?${escapeRegExp(wantedKey)}"?\\s*=`).test(line))
      return i + 1;
    if (inTable && candidate === undefined && tablePath.length > 0) candidate = tableStart;
  }
  return candidate;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** toml-patch puts the reason on the last line, after the quoted source and a caret. */
function lastLine(text: string): string {
  const lines = text.split('\n').map((line) => line.trim());
  return lines.filter(Boolean).pop() ?? '';
}
