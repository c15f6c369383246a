/**
 * A throwaway S3-compatible server (s3rver) on 127.0.0.1 for tests of the S3 blob store: its own
 * temp folder, one bucket made up front, gone again at stop().
 *
 * What to know when talking to it: it accepts the access key S3RVER (any secret: it does not
 * check SigV4 signatures, only that the key id exists), region us-east-1, and path-style
 * addressing only (http://127.0.0.1:port/bucket/key). Its ListObjectsV2 continuation tokens fail
 * with 500 on Node 20, so keep listings under 1000 keys. A HEAD on a missing bucket answers a
 * bare 404, like one on a missing key (real S3 does the same: HEAD answers have no body).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver, { type S3rverFilesystemStore, type S3rverObject } from 's3rver';

/** The key pair s3rver knows (it checks the key id; it does not verify signatures). */
export const S3_TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const S3_TEST_REGION = 'us-east-1';

/** The key pair as a registry on s3rver reads it: through `${VAR}`s (see storageToml). */
export const S3_TEST_ENV = {
  S3_KEY: S3_TEST_CREDENTIALS.accessKeyId,
  S3_SECRET: S3_TEST_CREDENTIALS.secretAccessKey,
} as const;

/**
 * A `[storage]` table (and `[coordination]` with `redisUrl`) for registry.toml, naming an s3rver
 * bucket; the credentials come from S3_TEST_ENV, so the commands must run with it.
 */
export function storageToml(
  s3: { endpoint: string; bucket: string },
  options: { prefix?: string; extra?: string[]; redisUrl?: string } = {},
): string {
  return [
    '',
    '[storage]',
    'type = "s3"',
    `endpoint = "${s3.endpoint}"`,
    `bucket = "${s3.bucket}"`,
    `prefix = "${options.prefix ?? ''}"`,
    'force_path_style = true',
    'access_key_id = "${S3_KEY}"',
    'secret_access_key = "${S3_SECRET}"',
    ...(options.extra ?? []),
    ...(options.redisUrl ? ['', '[coordination]', `redis_url = "${options.redisUrl}"`] : []),
    '',
  ].join('\n');
}

export interface RunningS3Server {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  /** The bucket made at start. */
  bucket: string;
  /** Where s3rver keeps the buckets' files. */
  directory: string;
  /** A client with the credentials s3rver accepts, for looking at what a store wrote. */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  /** Cuts every open connection (answers being streamed included); the server keeps listening. */
  dropConnections(): void;
  /** Stops listening (dropping open connections) and removes the folders; safe to call twice. */
  stop(): Promise<void>;
}

export async function startS3Server(bucket = 'registry-test'): Promise<RunningS3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'mbr-s3-'));
  const staging = await mkdtemp(join(tmpdir(), 'mbr-s3-staging-'));
  const removeFolders = async () => {
    await rm(directory, { recursive: true, force: true });
    await rm(staging, { recursive: true, force: true });
  };
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory,
    silent: true,
    configureBuckets: [{ name: bucket }],
  });
  makeUploadsAtomic(server.store, staging);
  let port: number;
  try {
    port = (await server.run()).port;
  } catch (error) {
    await removeFolders();
    throw error;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: S3_TEST_REGION,
    credentials: S3_TEST_CREDENTIALS,
    forcePathStyle: true,
  });
  let stopped = false;
  return {
    endpoint,
    port,
    bucket,
    directory,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    dropConnections() {
      server.httpServer?.closeAllConnections();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      client.destroy();
      const closed = server.close();
      // Keep-alive sockets of the stores under test would otherwise hold close() open.
      server.httpServer?.closeAllConnections();
      await closed;
      await removeFolders();
    },
  };
}

/**
 * s3rver writes an object in place (truncate, then write) and answers before the last bytes
 * are on disk, so a reader can see a partial object and concurrent writers of one key can
 * leave a mix of both. Real S3 does neither, and the contract tests are about the store, not
 * about s3rver: this makes it write to a file in `staging` (same disk), rename it into place
 * once whole, and store one key's uploads one after the other (its metadata files are written
 * in place too).
 */
function makeUploadsAtomic(store: S3rverFilesystemStore, staging: string): void {
  const queues = new Map<string, Promise<unknown>>();
  store.putObject = (object) => {
    const id = `${object.bucket}/${object.key}`;
    const queued = (queues.get(id) ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => putObjectAtomically(store, staging, object));
    queues.set(id, queued);
    // Forget the queue once it drains, so the map does not grow with every key ever written.
    const forget = () => {
      if (queues.get(id) === queued) queues.delete(id);
    };
    queued.then(forget, forget);
    return queued;
  };
}

async function putObjectAtomically(
  store: S3rverFilesystemStore,
  staging: string,
  object: S3rverObject,
): Promise<{ size: number; md5: string }> {
  const target = store.getResourcePath(object.bucket, object.key, 'object');
  const temp = join(staging, randomUUID());
  const md5 = createHash('md5');
  let size = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
  try {
    await pipeline(source, measure, createWriteStream(temp));
    await mkdir(dirname(target), { recursive: true });
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const digest = md5.digest('hex');
  await store.putMetadata(object.bucket, object.key, object.metadata, digest);
  return { size, md5: digest };
}
