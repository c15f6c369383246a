import type { SourceAuth } from '../config/schema.js';
import { RegistryError } from '../core/errors.js';

/**
 * Credentials are resolved only when a request is about to be made, so `source list` and
 * `config` work without the variables set, and the resolved secret never lands in a file.
 */

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export function expandVariables(
  value: string,
  sourceName: string,
  env: NodeJS.ProcessEnv = process.env,
  where = { owner: `source "${sourceName}"`, key: '[sources.auth]' },
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

/** The `Authorization` header value for a source, or undefined when it has no auth. */
export function authorizationHeader(auth: SourceAuth | undefined, sourceName: string): string | undefined {
  if (!auth) return undefined;
  if (auth.type === 'bearer') return `Bearer ${expandVariables(auth.token, sourceName)}`;
  const user = expandVariables(auth.username, sourceName);
  const password = expandVariables(auth.password, sourceName);
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Removes known secrets (and any userinfo in URLs) from text bound for output. */
export function redact(text: string, secrets: Iterable<string>): string {
  let out = text.replace(/(\w+:\/\/)[^/\s@]+@/g, '$1***@');
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}
