import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { type ErrorCode, RegistryError } from '../../core/errors.js';
import { type BlobInfo, type BlobRead, type BlobStore, isBlobKey } from './blob-store.js';

export interface S3BlobStoreOptions {
  /** An S3-compatible endpoint (MinIO, R2, Ceph, s3rver); absent means AWS S3 for `region`. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Folder inside the bucket that every key goes below ('' for the bucket's root). */
  prefix: string;
  /** endpoint/bucket/key URLs instead of bucket.endpoint/key (MinIO and s3rver need them). */
  forcePathStyle: boolean;
  /** Absent: the SDK's own chain (AWS_* variables, profiles, instance and container roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /**
   * How long the store may stay silent before it counts as down: to connect, to answer a
   * request, and between two packets of a body being sent or received. Default 30 s.
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** Tries of each request (and of each upload, which the SDK does not retry itself). */
const ATTEMPTS = 2;
/** What S3 allows for a presigned URL: 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** The ways a request can fail that callers tell apart; see failureOf. */
type Failure = 'missing' | 'no-bucket' | 'denied' | 'no-credentials' | 'unavailable' | 'refused';

/**
 * Blobs as objects in an S3-compatible bucket, a key being the object's name below `prefix`.
 * Atomic because S3 is: a PUT's object appears whole or not at all, and the last PUT wins.
 *
 * The bucket must exist and the credentials need s3:GetObject, s3:PutObject, s3:DeleteObject
 * and s3:ListBucket (without ListBucket S3 answers 403 rather than 404 for a missing key, and
 * that reads as "access denied", not as "no such blob").
 */
export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  /** '' or a folder ending in '/'. */
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly secret: string | undefined;
  /**
   * Set once any answer proved the bucket exists. Until then a bare 404 (a HEAD's answer has no
   * body to say what is missing) is checked against the bucket before it means "no blob", so a
   * mistyped bucket fails loudly instead of looking empty.
   */
  private bucketSeen = false;

  constructor(options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix);
    this.secret = options.credentials?.secretAccessKey;
    // The SDK warns on Node 20 that its releases after January 2027 will need Node 22; the
    // version package.json pins supports Node 20, so the warning would only alarm operators.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client(clientConfig(options));
  }

  get description(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  locate(key: string): string {
    return `s3://${this.bucket}/${this.objectKey(key)}`;
  }

  /** Closes the client's pooled connections; the store is unusable afterwards. */
  close(): void {
    this.client.destroy();
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    const Key = this.objectKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      this.bucketSeen = true;
      return { key, size: head.ContentLength ?? 0, modified: head.LastModified ?? new Date(0) };
    } catch (error) {
      if (failureOf(error) !== 'missing') throw this.failure(error, 'stat', key);
      await this.confirmMissing(error);
      return undefined;
    }
  }

  async read(key: string): Promise<BlobRead | undefined> {
    const Key = this.objectKey(key);
    let answer: GetObjectCommandOutput;
    try {
      answer = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
    } catch (error) {
      if (failureOf(error) !== 'missing') throw this.failure(error, 'read', key);
      await this.confirmMissing(error);
      return undefined;
    }
    this.bucketSeen = true;
    // In Node the body is the HTTP response itself: a cut connection or an idle timeout
    // destroys it with an error, which reaches whoever reads it.
    const body = answer.Body;
    if (!(body instanceof Readable) || answer.ContentLength === undefined) {
      if (body instanceof Readable) body.destroy();
      throw new RegistryError(
        'IO',
        `object storage ${this.description} answered ${key} without a body or size`,
      );
    }
    return { size: answer.ContentLength, body };
  }

  async putFile(key: string, file: string): Promise<void> {
    const Key = this.objectKey(key);
    const { size } = await stat(file);
    const etag = await this.upload(Key, key, file, size);
    await this.verifyUpload(Key, key, size, etag);
    // Consumed, as FsBlobStore's rename consumes it; kept when the upload failed.
    await rm(file, { force: true });
  }

  async putBytes(key: string, bytes: Uint8Array): Promise<void> {
    const Key = this.objectKey(key);
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key,
      Body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      ContentLength: bytes.byteLength,
    });
    try {
      await this.client.send(command);
      this.bucketSeen = true;
    } catch (error) {
      throw this.failure(error, 'write', key);
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      // S3 answers 204 for a missing key as well.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (error) {
      if (failureOf(error) !== 'missing') throw this.failure(error, 'delete', key);
    }
  }

  async *list(folder: string): AsyncIterable<BlobInfo> {
    if (folder !== '' && (!folder.endsWith('/') || !isBlobKey(folder.slice(0, -1)))) {
      throw new RegistryError('USAGE', `refusing blob folder ${JSON.stringify(folder)}`);
    }
    let ContinuationToken: string | undefined;
    do {
      const page = await this.listPage(folder, ContinuationToken);
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(this.prefix.length);
        // Skips what other tools leave in a bucket that no store key can name, such as the
        // empty "folder/" objects consoles create.
        if (key === undefined || !isBlobKey(key)) continue;
        yield { key, size: object.Size ?? 0, modified: object.LastModified ?? new Date(0) };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
  }

  async presignedUrl(key: string, seconds: number): Promise<string> {
    const Key = this.objectKey(key);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_PRESIGN_SECONDS) {
      throw new RegistryError(
        'USAGE',
        `presigned URLs last 1 to ${MAX_PRESIGN_SECONDS} seconds, not ${seconds}`,
      );
    }
    // Signed locally: no request, so nothing to fail but the credentials lookup.
    try {
      return await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key }), {
        expiresIn: seconds,
      });
    } catch (error) {
      throw this.failure(error, 'sign a URL for', key);
    }
  }

  /** The object name of a key; refuses a key that is not plain segments, as FsBlobStore does. */
  private objectKey(key: string): string {
    if (!isBlobKey(key)) throw new RegistryError('USAGE', `refusing blob key ${JSON.stringify(key)}`);
    return `${this.prefix}${key}`;
  }

  private async listPage(folder: string, ContinuationToken: string | undefined) {
    const command = new ListObjectsV2Command({
      Bucket: this.bucket,
      Prefix: `${this.prefix}${folder}`,
      ContinuationToken,
    });
    try {
      const page = await this.client.send(command);
      this.bucketSeen = true;
      return page;
    } catch (error) {
      throw this.failure(error, 'list', folder === '' ? '(all)' : folder);
    }
  }

  /**
   * One PUT of the whole file, streamed with its length declared, and no checksum asked for
   * (see clientConfig). One PUT takes up to 5 GiB, far above any archive, so no multipart
   * upload (and no @aws-sdk/lib-storage). The SDK does not retry a request whose body is a
   * stream, so this does, reopening the file, when the store did not answer.
   */
  private async upload(Key: string, key: string, file: string, size: number): Promise<string | undefined> {
    for (let attempt = 1; ; attempt++) {
      const command = new PutObjectCommand({
        Bucket: this.bucket,
        Key,
        Body: createReadStream(file),
        ContentLength: size,
      });
      try {
        // No limit on the whole request, which grows with the file; the idle timeout still
        // catches a store that stops taking bytes.
        const answer = await this.client.send(command, { requestTimeout: 0 });
        this.bucketSeen = true;
        return answer.ETag;
      } catch (error) {
        if (attempt >= ATTEMPTS || failureOf(error) !== 'unavailable') {
          throw this.failure(error, 'write', key);
        }
      }
    }
  }

  /**
   * Checks that the stored object has the file's size, and removes it when not: a store that
   * mangled the body (as chunked uploads with checksums do on some S3 imitations) must not
   * leave a wrong blob behind. Skipped when the ETag differs: a later writer replaced the object,
   * and what it wrote is its own business.
   */
  private async verifyUpload(
    Key: string,
    key: string,
    size: number,
    etag: string | undefined,
  ): Promise<void> {
    let stored: { ContentLength?: number; ETag?: string };
    try {
      stored = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
    } catch (error) {
      throw this.failure(error, 'check the upload of', key);
    }
    if (etag !== undefined && stored.ETag !== undefined && stored.ETag !== etag) return;
    if (stored.ContentLength === size) return;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch(() => undefined);
    throw new RegistryError(
      'IO',
      `object storage ${this.description} stored ${stored.ContentLength ?? 'an unknown number of'} bytes for ${key}, not ${size}`,
    );
  }

  /**
   * Lets a 404 mean "no such blob" only where the bucket is known to exist: a GET's NoSuchKey
   * says so itself (its bucket was found); a bare 404 needs the bucket checked, once.
   */
  private async confirmMissing(error: unknown): Promise<void> {
    if (error instanceof Error && error.name === 'NoSuchKey') this.bucketSeen = true;
    if (this.bucketSeen) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      this.bucketSeen = true;
    } catch (error) {
      // A bare 404 to a HEAD on the bucket can only mean the bucket.
      const failure = failureOf(error);
      throw this.failure(error, 'check the bucket', '', failure === 'missing' ? 'no-bucket' : failure);
    }
  }

  /**
   * The RegistryError for a failed request. Whatever keeps the store from working (down,
   * missing bucket, refused credentials) is UNAVAILABLE, so a server answers 503 ("try again")
   * rather than 404, which clients and caches would believe. Messages carry the SDK's reason,
   * never the secret key.
   */
  private failure(error: unknown, action: string, key: string, failure = failureOf(error)): RegistryError {
    const reason = this.redact(reasonOf(error));
    const where = `object storage ${this.description}`;
    const refused = `${where} could not ${action}${key === '' ? '' : ` ${key}`}: ${reason}`;
    const messages: Record<Failure, [ErrorCode, string, string?]> = {
      unavailable: [
        'UNAVAILABLE',
        `${where} does not answer: ${reason}`,
        'check [storage] endpoint, and that the object store is running',
      ],
      'no-bucket': [
        'UNAVAILABLE',
        `${where}: bucket ${this.bucket} does not exist`,
        'create it, or fix [storage] bucket',
      ],
      denied: [
        'UNAVAILABLE',
        `${where}: access denied (${reason})`,
        'check the credentials and that they may get, put, delete and list objects in the bucket',
      ],
      'no-credentials': [
        'UNAVAILABLE',
        `${where}: no credentials found (${reason})`,
        'set [storage] access_key_id and secret_access_key, or the AWS_* environment variables',
      ],
      missing: ['IO', refused],
      refused: ['IO', refused],
    };
    const [code, message, hint] = messages[failure];
    return new RegistryError(code, message, { cause: error, ...(hint === undefined ? {} : { hint }) });
  }

  /** Belt and braces: the SDK does not put secrets in messages, but a proxy's answer might. */
  private redact(text: string): string {
    return this.secret ? text.split(this.secret).join('***') : text;
  }
}

/**
 * '' stays ''; anything else becomes plain segments ending in '/', so keys never merge with
 * the prefix ("team" + "x" must not become "teamx").
 */
function normalizePrefix(prefix: string): string {
  if (prefix === '') return '';
  const folder = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (!isBlobKey(folder)) {
    throw new RegistryError('CONFIG', `refusing storage prefix ${JSON.stringify(prefix)}`);
  }
  return `${folder}/`;
}

function clientConfig(options: S3BlobStoreOptions): S3ClientConfig {
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    maxAttempts: ATTEMPTS,
    // The SDK's default (checksums on every request) sends streamed bodies with aws-chunked
    // framing, which S3 imitations such as s3rver store as part of the object. Checksums only
    // where an operation requires one; and no ChecksumAlgorithm on a PUT of a stream.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Without timeouts a store that accepts connections but never answers hangs every request
    // for good. requestTimeout ends at the answer's headers; socketTimeout then covers bodies.
    requestHandler: new NodeHttpHandler({
      connectionTimeout: timeout,
      requestTimeout: timeout,
      socketTimeout: timeout,
      throwOnRequestTimeout: true,
    }),
    // The SDK's warnings (e.g. that a streamed PUT is not retried, which upload handles) would
    // go to the console; every failure reaches the caller as a RegistryError instead.
    logger: { debug: ignore, info: ignore, warn: ignore, error: ignore },
  };
}

function ignore(): void {}

const DENIED = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'AllAccessDisabled',
]);

/** What a rejection from the client means, from the S3 error code and the HTTP status. */
function failureOf(error: unknown): Failure {
  if (!(error instanceof Error)) return 'unavailable';
  const status = statusOf(error);
  if (error.name === 'NoSuchBucket') return 'no-bucket';
  if (error.name === 'CredentialsProviderError') return 'no-credentials';
  if (error.name === 'NoSuchKey' || error.name === 'NotFound' || status === 404) return 'missing';
  if (status === 403 || DENIED.has(error.name)) return 'denied';
  if (status === undefined) return isNetworkError(error) ? 'unavailable' : 'refused';
  return status >= 500 || status === 429 || status === 408 ? 'unavailable' : 'refused';
}

/**
 * No answer at all: refused, reset, timed out, unknown host. These carry a system error code
 * (ECONNREFUSED, ENOTFOUND, ...) or are the HTTP handler's TimeoutError; anything else without
 * a status is the SDK's own complaint (a bad endpoint, no region), not the store's silence.
 */
function isNetworkError(error: Error): boolean {
  if (error.name === 'TimeoutError') return true;
  return 'code' in error && typeof error.code === 'string' && /^E[A-Z_]+$/.test(error.code);
}

function statusOf(error: Error): number | undefined {
  const metadata: unknown = '$metadata' in error ? error.$metadata : undefined;
  if (typeof metadata !== 'object' || metadata === null || !('httpStatusCode' in metadata)) return undefined;
  return typeof metadata.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

/** One line on why: the S3 code or errno, the status, and the message when it says more. */
function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const status = statusOf(error);
  const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  const parts = [error.message && error.message !== 'UnknownError' ? error.message : error.name];
  if (code && !parts[0]?.includes(code)) parts.push(`(${code})`);
  if (status !== undefined) parts.push(`(HTTP ${status})`);
  return parts.join(' ');
}
