import type { SourceAuth } from '../config/schema.js';
import { RegistryError } from '../core/errors.js';

/**
 * Credentials are resolved only when a request is about to be made, so `source list` and
 * `config` work without the variables set, and the resolved secret never lands in a file.
 */

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Who holds a credential, for messages: `source "x"` and `[sources.auth]`, or `[git.auth]`. */
export interface CredentialOwner {
  owner: string;
  key: string;
}

export function expandVariables(
  value: string,
  sourceName: string,
  env: NodeJS.ProcessEnv = process.env,
  where: CredentialOwner = { owner: `source "${sourceName}"`, key: '[sources.auth]' },
): string {
  return value.replace(VARIABLE, (_, name: string) => {
    const resolved = env[name];
    if (resolved === undefined || resolved === '') {
      throw new RegistryError('AUTH', `${where.owner}: environment variable ${name} is not set`, {
        hint: `export ${name}=... (it is referenced by ${where.key} in registry.toml)`,
      });
    }
    return resolved;
  });
}

/** `[server] admin_token`, with its ${VAR}s resolved. */
export function resolveAdminToken(value: string, env: NodeJS.ProcessEnv = process.env): string {
  return expandVariables(value, '', env, { owner: 'server.admin_token', key: 'server.admin_token' });
}

/**
 * The `Authorization` header value for a source (or, with `where`, another holder of the same
 * kind of auth table such as [git.auth]), or undefined when it has no auth.
 */
export function authorizationHeader(
  auth: SourceAuth | undefined,
  sourceName: string,
  where?: CredentialOwner,
): string | undefined {
  if (!auth) return undefined;
  const expand = (value: string) => expandVariables(value, sourceName, process.env, where);
  if (auth.type === 'bearer') return `Bearer ${expand(auth.token)}`;
  return `Basic ${Buffer.from(`${expand(auth.username)}:${expand(auth.password)}`).toString('base64')}`;
}

/**
 * Every form of an Authorization header's secret that could reach a message: the header value,
 * its credentials part, and for Basic the decoded user:password and the password alone.
 */
export function headerSecrets(header: string | undefined): string[] {
  if (!header) return [];
  const credentials = header.replace(/^\w+ /, '');
  if (!/^Basic /i.test(header)) return [header, credentials];
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  return [header, credentials, decoded, decoded.slice(decoded.indexOf(':') + 1)];
}

/** Removes known secrets (and any userinfo in URLs) from text bound for output. */
export function redact(text: string, secrets: Iterable<string>): string {
  let out = text.replace(/(\w+:\/\/)[^/\s@]+@/g, '$1***@');
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}
