import type { Readable } from 'node:stream';

/**
 * Where archives, prebuilt wasm and symbols live: a folder (`data/`, the default) or an
 * S3-compatible bucket. Keys are the paths below `data/` (`packages/<module>/<version>/<sha256>.zip`),
 * the same in both, content-addressed where the content has a checksum.
 *
 * The contract every store keeps (test/unit/blob-store-contract.test.ts runs it against both):
 * a blob appears whole or not at all; readers never see a partial one; a missing key is
 * `undefined`, never an error; a store that does not answer throws RegistryError UNAVAILABLE,
 * so a server says 503, not 404.
 */
export interface BlobStore {
  /** For messages: `data/` or `s3://bucket/prefix/`. */
  readonly description: string;
  /** Where a key's blob is, for messages: its file, or its object's URL. */
  locate(key: string): string;
  stat(key: string): Promise<BlobInfo | undefined>;
  /** The blob's bytes as a stream, with its size; undefined when there is no such blob. */
  read(key: string): Promise<BlobRead | undefined>;
  /**
   * Makes a local file (already verified by the caller) the blob at `key`, replacing any, and
   * consumes it. The file is in a local temp folder (data/tmp).
   */
  putFile(key: string, file: string): Promise<void>;
  /** Small blobs (records): written whole, replacing any. */
  putBytes(key: string, bytes: Uint8Array): Promise<void>;
  /** Removes the blob; no error when it is already gone. */
  delete(key: string): Promise<void>;
  /** Every blob below `folder` (a key prefix ending in `/`, or `` for all), in no set order. */
  list(folder: string): AsyncIterable<BlobInfo>;
  /** A URL that fetches the blob without credentials for `seconds`, where the store has one. */
  presignedUrl?(key: string, seconds: number): Promise<string>;
}

export interface BlobInfo {
  key: string;
  size: number;
  modified: Date;
}

export interface BlobRead {
  size: number;
  body: Readable;
}

const SEGMENT = /^[^/\0]+$/;

/**
 * Keys are relative paths of plain segments: no empty, `.` or `..` segment, no leading or
 * trailing slash, no NUL. Checked by every store before use, whatever built the key.
 */
export function isBlobKey(key: string): boolean {
  if (key.length === 0 || key.length > 1024) return false;
  return key.split('/').every((segment) => SEGMENT.test(segment) && segment !== '.' && segment !== '..');
}
