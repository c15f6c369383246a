import { RegistryError } from '../core/errors.js';
import { SOURCE_NAME_PATTERN } from './schema.js';

/**
 * The rules of `moonbit-registry token ...`, as edits of the raw TOML table: read and publish
 * tokens go to `[[server.access.tokens]]`, the admin token to `[server] admin_token_sha256`. Only hashes are
 * written; the token itself is shown once by the command and kept nowhere.
 */

type RawTable = Record<string, unknown>;

function table(parent: RawTable, key: string, where: string): RawTable {
  if (parent[key] === undefined) parent[key] = {};
  const value = parent[key];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RegistryError('CONFIG', `registry.toml: ${where} must be a table`);
  }
  return value as RawTable;
}

function rawTokens(raw: RawTable): RawTable[] {
  const access = table(table(raw, 'server', '[server]'), 'access', '[server.access]');
  if (access.tokens === undefined) access.tokens = [];
  if (!Array.isArray(access.tokens)) {
    throw new RegistryError(
      'CONFIG',
      'registry.toml: server.access.tokens must be [[server.access.tokens]] tables',
    );
  }
  return access.tokens as RawTable[];
}

/** A read token, or with `publish` globs a token that may also publish those modules. */
export function addToken(
  raw: RawTable,
  name: string,
  sha256: string,
  created: string,
  publish?: readonly string[],
): void {
  if (!SOURCE_NAME_PATTERN.test(name)) {
    throw new RegistryError('USAGE', `invalid token name "${name}"`, {
      hint: 'use letters, digits, "-" and "_", starting with a letter or digit (at most 64)',
    });
  }
  const tokens = rawTokens(raw);
  if (tokens.some((t) => t.name === name)) {
    throw new RegistryError('EXISTS', `a token named "${name}" already exists`, {
      hint: `remove it first (moonbit-registry token remove ${name}) or pick another name`,
    });
  }
  tokens.push({ name, sha256, created, ...(publish ? { publish: [...publish] } : {}) });
}

export function removeToken(raw: RawTable, name: string): void {
  const tokens = rawTokens(raw);
  const at = tokens.findIndex((t) => t.name === name);
  if (at < 0) {
    const known = tokens.map((t) => String(t.name)).join(', ') || 'none';
    throw new RegistryError('NOT_FOUND', `unknown token "${name}" (configured: ${known})`);
  }
  tokens.splice(at, 1);
}

/** Replaces the admin token; a plain `admin_token` must be removed by hand first. */
export function setAdminToken(raw: RawTable, sha256: string): void {
  const server = table(raw, 'server', '[server]');
  if (server.admin_token !== undefined) {
    throw new RegistryError('EXISTS', '[server] admin_token is set in registry.toml', {
      hint: 'delete that line first; the new token is stored as admin_token_sha256',
    });
  }
  server.admin_token_sha256 = sha256;
}
