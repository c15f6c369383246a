import * as TOML from '@decimalturn/toml-patch';
import type { Command } from 'commander';
import { migrateConfig } from '../../config/migrate-config.js';
import { type ConfigFile, loadConfigFile, updateConfigFile } from '../../config/toml-file.js';
import { RegistryError } from '../../core/errors.js';
import { registryLayout } from '../../registry/layout.js';
import { printLine } from '../output.js';
import { openCommandRegistry, registryDir } from './registry-dir.js';

export function registerConfigCommand(program: Command): void {
  const config = program
    .command('config')
    .description('show registry.toml, read one dotted key (server.port), or set it')
    .argument('[key]', 'dotted key, e.g. server.port, mirror.concurrency, sources.0.priority')
    .argument(
      '[value]',
      'new value (numbers, true/false and JSON lists such as \'["a/*"]\' are typed; anything else is a string)',
    )
    .action(
      async (key: string | undefined, value: string | undefined, _options: unknown, command: Command) => {
        const registry = await openCommandRegistry(command);
        const effective = redactSecrets(registry.config) as Record<string, unknown>;
        if (key === undefined) {
          printLine(TOML.stringify(effective).trimEnd());
          return;
        }
        const path = splitKey(key);
        if (value === undefined) {
          const found = getPath(effective, path);
          if (found === undefined) throw new RegistryError('NOT_FOUND', `no setting "${key}"`);
          printLine(typeof found === 'object' ? JSON.stringify(found, null, 2) : String(found));
          return;
        }
        if (path.includes('auth')) {
          throw new RegistryError('USAGE', 'credentials are not set through `config`', {
            hint: 'edit [sources.auth] in registry.toml and reference an environment variable: token = "${MY_TOKEN}"',
          });
        }
        const parsed = parseValue(value);
        await updateConfigFile(registry.configFile, (raw) => setPath(raw, path, parsed, key));
        printLine(`${key} = ${JSON.stringify(redactSecrets(parsed, path[path.length - 1]))}`);
      },
    );
  config
    .command('migrate')
    .description(
      "rewrite moonbit-registry-tools' keys ([upstream], [server.smart_http]) in the current layout, keeping comments",
    )
    .action(async (_options: unknown, command: Command) => {
      const { file } = await loadConfigOnly(command);
      const { changed, result } = await updateConfigFile(file, migrateConfig);
      if (!changed) {
        printLine(`${file.path} is already in the current layout; nothing changed`);
        return;
      }
      for (const change of result) printLine(change);
      printLine(`rewrote ${file.path}`);
    });
}

/**
 * registry.toml alone: `config migrate` must work on a file whose data folder is not taken
 * over yet, and it prints no notices about the keys it is about to rewrite.
 */
async function loadConfigOnly(command: Command): Promise<{ file: ConfigFile }> {
  return { file: await loadConfigFile(registryLayout(registryDir(command)).configFile) };
}

function splitKey(key: string): string[] {
  const parts = key.split('.');
  if (parts.some((p) => p === '')) throw new RegistryError('USAGE', `invalid key "${key}"`);
  return parts;
}

function parseValue(value: string): string | number | boolean | unknown[] {
  if (value === 'true' || value === 'false') return value === 'true';
  // A list, written as JSON: '["company/*", "team/**"]'.
  if (value.trimStart().startsWith('[')) {
    try {
      const list: unknown = JSON.parse(value);
      if (Array.isArray(list)) return list;
    } catch {
      // Not JSON after all: kept as the string it is.
    }
  }
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  return value;
}

function getPath(root: unknown, path: string[]): unknown {
  let node = root;
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Sets a scalar or a list inside existing tables; a table missing on the way is created (e.g. [server]). */
function setPath(raw: Record<string, unknown>, path: string[], value: unknown, key: string): void {
  let node: Record<string, unknown> = raw;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    if (next === undefined) node[part] = {};
    else if (typeof next !== 'object' || next === null)
      throw new RegistryError('USAGE', `"${key}": ${part} is not a table`);
    node = node[part] as Record<string, unknown>;
  }
  const last = path[path.length - 1] as string;
  const current = node[last];
  // A list is a value (replaced whole); a table is not.
  if (typeof current === 'object' && current !== null && !Array.isArray(current)) {
    throw new RegistryError('USAGE', `"${key}" is a table; set one of its keys instead`);
  }
  node[last] = value;
}

/** Keys whose values are secrets, wherever they are: [sources.auth], [server] admin_token, [storage]. */
const SECRET_KEYS = new Set(['token', 'password', 'admin_token', 'secret_access_key']);
/** Keys whose values are URLs that may carry a password (`redis://:secret@host`). */
const URL_KEYS = new Set(['redis_url', 'endpoint', 'remote_url']);

/** Literal secrets never leave the process; `${VAR}` references are not secrets and stay. */
export function redactSecrets(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSecrets(v, k)]));
  }
  if (SECRET_KEYS.has(key) && typeof value === 'string' && !/^\$\{\w+\}$/.test(value)) {
    return '***';
  }
  if (URL_KEYS.has(key) && typeof value === 'string' && URL.canParse(value)) {
    const url = new URL(value);
    if (url.password !== '') return value.replace(`:${url.password}@`, ':***@');
  }
  return value;
}
