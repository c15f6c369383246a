import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Registry access tokens: generated here, stored only as SHA-256 hex in registry.toml, and
 * compared through their digests in constant time. The tokens are 256 random bits, so a plain
 * SHA-256 is enough (a slow password hash protects guessable secrets, which these are not).
 */

/** Recognisable in logs and secret scanners, like `ghp_` or `npm_`. */
export const TOKEN_PREFIX = 'mbr_';

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function tokenSha256(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * The name of the stored token that `presented` is, or undefined. Every stored hash is compared,
 * each in constant time, so the time taken says neither which one matched nor how closely.
 */
export function matchToken(
  presented: string,
  stored: ReadonlyArray<{ name: string; sha256: string }>,
): string | undefined {
  const digest = createHash('sha256').update(presented).digest();
  let matched: string | undefined;
  for (const token of stored) {
    if (timingSafeEqual(digest, Buffer.from(token.sha256, 'hex')) && matched === undefined) {
      matched = token.name;
    }
  }
  return matched;
}

/** The token of `Authorization: Bearer <token>`, or undefined for any other header. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}

/**
 * The secret a client sent in `Authorization`: a bearer token, or the password of Basic
 * credentials (the user name is free, as git and reqwest need one). `https://TOKEN@host`
 * gives Basic with the token as user name and no password: that token counts too.
 */
export function presentedSecret(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const bearer = bearerToken(header);
  if (bearer) return bearer;
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!basic?.[1]) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const password = decoded.slice(colon + 1);
  return password === '' ? decoded.slice(0, colon) || undefined : password;
}
