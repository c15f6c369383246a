import { createHash, type Hash } from 'node:crypto';

/** Index checksums are the lowercase hex SHA-256 of the archive bytes (PROTOCOL.md 3). */
const CHECKSUM_PATTERN = /^[0-9a-f]{64}$/;

export function normalizeChecksum(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const lower = value.toLowerCase();
  return CHECKSUM_PATTERN.test(lower) ? lower : undefined;
}

export function newArchiveHash(): Hash {
  return createHash('sha256');
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function checksumMismatchMessage(what: string, expected: string, actual: string): string {
  return `checksum mismatch for ${what}: expected ${expected}, got ${actual}`;
}
