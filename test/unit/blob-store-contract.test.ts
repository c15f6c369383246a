/**
 * The BlobStore contract (src/store/blob/blob-store.ts), run against every store: the folder
 * one and the S3 one (on s3rver). A store that passes can replace the other without the
 * registry noticing. S3-only behaviour (prefix, presigned URLs, a store that does not answer)
 * follows in its own suite.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { type ErrorCode, RegistryError } from '../../src/core/errors.js';
import type { BlobInfo, BlobStore } from '../../src/store/blob/blob-store.js';
import { FsBlobStore } from '../../src/store/blob/fs-blob-store.js';
import { S3BlobStore, type S3BlobStoreOptions } from '../../src/store/blob/s3-blob-store.js';
import {
  type RunningS3Server,
  S3_TEST_CREDENTIALS,
  S3_TEST_REGION,
  startS3Server,
} from '../support/s3-server.js';

interface StoreUnderTest {
  store: BlobStore;
  /** A folder for files to putFile, on the same disk as the store's (as data/tmp is). */
  scratch: string;
  close(): Promise<void>;
}

/** Generous: only there so a store that hangs fails the test instead of the whole run. */
const TEST_TIMEOUT = { timeout: 120_000 };
const INVALID_KEYS = ['../x', 'a//b', '/a', 'a/', 'a/./b', 'a/../b', '..', '', 'a\0b'];

/**
 * Every case gets a store of its own (a fresh folder, a fresh bucket), so `list('')` sees
 * only what the case wrote.
 */
function blobStoreContract(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  const withStore = async (run: (subject: StoreUnderTest) => Promise<void>): Promise<void> => {
    const subject = await makeStore();
    try {
      await run(subject);
    } finally {
      await subject.close();
    }
  };

  describe(`BlobStore contract: ${name}`, () => {
    it('answers undefined for a missing key, from stat and read alike', TEST_TIMEOUT, () =>
      withStore(async ({ store }) => {
        assert.equal(await store.stat('packages/none/1.0.0/x.zip'), undefined);
        assert.equal(await store.read('packages/none/1.0.0/x.zip'), undefined);
      }),
    );

    it('gives back what putBytes wrote, with its size', TEST_TIMEOUT, () =>
      withStore(async ({ store }) => {
        const bytes = Buffer.from('{"name":"alice/json","version":"1.0.0"}');
        await store.putBytes('records/alice/json.json', bytes);
        const info = await store.stat('records/alice/json.json');
        assert.equal(info?.key, 'records/alice/json.json');
        assert.equal(info?.size, bytes.length);
        assert.ok(info?.modified instanceof Date && !Number.isNaN(info.modified.getTime()));
        assert.deepEqual(await readBlob(store, 'records/alice/json.json'), bytes);
      }),
    );

    it('stores an empty blob', TEST_TIMEOUT, () =>
      withStore(async ({ store }) => {
        await store.putBytes('empty', new Uint8Array(0));
        assert.equal((await store.stat('empty'))?.size, 0);
        assert.equal((await readBlob(store, 'empty')).length, 0);
      }),
    );

    it('takes a file with putFile, consuming it, and gives back its exact bytes', TEST_TIMEOUT, () =>
      withStore(async ({ store, scratch }) => {
        const bytes = randomBytes(3 * 1024 * 1024 + 17);
        const file = join(scratch, 'upload.zip');
        await writeFile(file, bytes);
        await store.putFile('packages/alice/lib/1.0.0/a.zip', file);
        await assert.rejects(access(file), { code: 'ENOENT' });
        assert.equal((await store.stat('packages/alice/lib/1.0.0/a.zip'))?.size, bytes.length);
        assert.equal(digest(await readBlob(store, 'packages/alice/lib/1.0.0/a.zip')), digest(bytes));
      }),
    );

    it('replaces a blob that is put again, whichever way', TEST_TIMEOUT, () =>
      withStore(async ({ store, scratch }) => {
        await store.putBytes('k', Buffer.from('first, and longer than what follows'));
        await store.putBytes('k', Buffer.from('second'));
        assert.equal((await readBlob(store, 'k')).toString(), 'second');
        const file = join(scratch, 'third');
        await writeFile(file, 'third by file');
        await store.putFile('k', file);
        assert.equal((await readBlob(store, 'k')).toString(), 'third by file');
        assert.equal((await store.stat('k'))?.size, 'third by file'.length);
      }),
    );

    it('deletes a blob, and deleting a missing one is no error', TEST_TIMEOUT, () =>
      withStore(async ({ store }) => {
        await store.putBytes('a/b', Buffer.from('x'));
        await store.delete('a/b');
        assert.equal(await store.stat('a/b'), undefined);
        assert.equal(await store.read('a/b'), undefined);
        await store.delete('a/b');
        await store.delete('never/was');
      }),
    );

    it('lists exactly the blobs below a folder, and all of them for ""', TEST_TIMEOUT, () =>
      withStore(async ({ store }) => {
        const blobs: Record<string, string> = {
          'packages/a/1.zip': 'one',
          'packages/a/deep/2.zip': 'two!',
          'packages/ab/3.zip': 'sibling with a common name prefix',
          'packages/a.zip': 'a file beside the folder',
          'other/c': 'c',
        };
        for (const [key, value] of Object.entries(blobs)) await store.putBytes(key, Buffer.from(value));
        const listed = await listSorted(store, 'packages/a/');
        assert.deepEqual(
          listed.map(({ key, size }) => ({ key, size })),
          [
            { key: 'packages/a/1.zip', size: 3 },
            { key: 'packages/a/deep/2.zip', size: 4 },
          ],
        );
        assert.ok(listed.every(({ modified }) => modified instanceof Date));
        assert.deepEqual(
          (await listSorted(store, '')).map(({ key }) => key),
          Object.keys(blobs).sort(),
        );
        assert.deepEqual(await listSorted(store, 'packages/none/'), []);
      }),
    );

    it('refuses a folder to list that is not one', TEST_TIMEOUT, () =>
      withStore(async ({ store }) => {
        for (const folder of ['packages', '../', '/packages/', 'a//']) {
          await assert.rejects(listSorted(store, folder), registryError('USAGE'), folder);
        }
      }),
    );

    it('refuses keys that are not plain relative paths, before touching anything', TEST_TIMEOUT, () =>
      withStore(async ({ store, scratch }) => {
        const file = join(scratch, 'kept');
        await writeFile(file, 'x');
        for (const key of INVALID_KEYS) {
          const label = JSON.stringify(key);
          await assert.rejects(store.stat(key), registryError('USAGE'), label);
          await assert.rejects(store.read(key), registryError('USAGE'), label);
          await assert.rejects(store.putBytes(key, Buffer.from('x')), registryError('USAGE'), label);
          await assert.rejects(store.putFile(key, file), registryError('USAGE'), label);
          await assert.rejects(store.delete(key), registryError('USAGE'), label);
        }
        await access(file);
        assert.deepEqual(await listSorted(store, ''), []);
      }),
    );

    it('streams a big blob with its exact bytes', TEST_TIMEOUT, () =>
      withStore(async ({ store, scratch }) => {
        const bytes = randomBytes(20 * 1024 * 1024 + 3);
        const file = join(scratch, 'big');
        await writeFile(file, bytes);
        await store.putFile('big/blob.wasm', file);
        const blob = await store.read('big/blob.wasm');
        assert.ok(blob);
        assert.equal(blob.size, bytes.length);
        // Hashed as it streams, chunk by chunk, rather than gathered first.
        const hash = createHash('sha256');
        let received = 0;
        for await (const chunk of blob.body as AsyncIterable<Buffer>) {
          hash.update(chunk);
          received += chunk.length;
        }
        assert.equal(received, bytes.length);
        assert.equal(hash.digest('hex'), digest(bytes));
      }),
    );

    it('leaves one whole value when 10 writers put the same key at once', TEST_TIMEOUT, () =>
      withStore(async ({ store }) => {
        // Different sizes, each a few chunks long, so a mix of two would show.
        const values = Array.from({ length: 10 }, (_, i) => randomBytes(200_000 + i * 4_099));
        await Promise.all(values.map((value) => store.putBytes('contended/key', value)));
        const stored = await readBlob(store, 'contended/key');
        assert.ok(
          values.some((value) => value.equals(stored)),
          `stored ${stored.length} bytes that are none of the values written`,
        );
        assert.equal((await store.stat('contended/key'))?.size, stored.length);
      }),
    );
  });
}

blobStoreContract('FsBlobStore', async () => {
  // data/ and a scratch folder beside it (not in it, or list('') would see the files).
  const base = await mkdtemp(join(tmpdir(), 'mbr-blob-'));
  const root = join(base, 'data');
  const scratch = join(base, 'tmp');
  await mkdir(root);
  await mkdir(scratch);
  return {
    store: new FsBlobStore(root),
    scratch,
    close: () => rm(base, { recursive: true, force: true }),
  };
});

describe('S3BlobStore on s3rver', () => {
  let s3: RunningS3Server;
  let buckets = 0;

  before(async () => {
    s3 = await startS3Server();
  });
  after(async () => {
    await s3?.stop();
  });

  /** A store on `server`, in its bucket unless `options` name another. */
  const storeOn = (server: RunningS3Server, options: Partial<S3BlobStoreOptions> = {}): S3BlobStore =>
    new S3BlobStore({
      endpoint: server.endpoint,
      region: S3_TEST_REGION,
      bucket: server.bucket,
      prefix: '',
      forcePathStyle: true,
      credentials: S3_TEST_CREDENTIALS,
      timeoutMs: 20_000,
      ...options,
    });

  blobStoreContract('S3BlobStore', async () => {
    const bucket = `contract-${++buckets}`;
    await s3.createBucket(bucket);
    const store = storeOn(s3, { bucket });
    const scratch = await mkdtemp(join(tmpdir(), 'mbr-blob-scratch-'));
    return {
      store,
      scratch,
      close: async () => {
        store.close();
        await rm(scratch, { recursive: true, force: true });
      },
    };
  });

  describe('S3BlobStore only', () => {
    it('keeps every key below the prefix, and lists keys without it', TEST_TIMEOUT, async () => {
      await s3.createBucket('prefixed');
      const store = storeOn(s3, { bucket: 'prefixed', prefix: 'team/registry' });
      try {
        assert.equal(store.description, 's3://prefixed/team/registry/');
        await store.putBytes('packages/a/1.zip', Buffer.from('inside'));
        // Beside the prefix, with a common name prefix: not the store's.
        for (const Key of ['team/registry-old/x', 'team/other', 'packages/a/2.zip']) {
          await s3.client.send(new PutObjectCommand({ Bucket: 'prefixed', Key, Body: 'outside' }));
        }
        const head = await s3.client.send(
          new HeadObjectCommand({ Bucket: 'prefixed', Key: 'team/registry/packages/a/1.zip' }),
        );
        assert.equal(head.ContentLength, 'inside'.length);
        assert.deepEqual(
          (await listSorted(store, '')).map(({ key }) => key),
          ['packages/a/1.zip'],
        );
        assert.deepEqual(
          (await listSorted(store, 'packages/a/')).map(({ key }) => key),
          ['packages/a/1.zip'],
        );
        assert.equal(await store.stat('packages/a/2.zip'), undefined);
        assert.equal((await readBlob(store, 'packages/a/1.zip')).toString(), 'inside');
      } finally {
        store.close();
      }
    });

    it('refuses a prefix that is not plain folder names', () => {
      for (const prefix of ['/abs', 'a//b', '../up', 'a/./b']) {
        assert.throws(() => storeOn(s3, { prefix }), registryError('CONFIG'), prefix);
      }
    });

    it('signs a URL that fetches the blob without credentials', TEST_TIMEOUT, async () => {
      // s3rver checks the key id but not signatures, so any secret does here.
      const secret = 'a-secret-the-url-must-not-carry';
      const store = storeOn(s3, {
        prefix: 'signed/',
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: secret },
      });
      try {
        const bytes = randomBytes(100_000);
        await store.putBytes('packages/b/1.zip', bytes);
        const url = await store.presignedUrl('packages/b/1.zip', 60);
        assert.match(url, /X-Amz-Signature=/);
        assert.ok(!url.includes(secret));
        const response = await fetch(url);
        assert.equal(response.status, 200);
        assert.ok(Buffer.from(await response.arrayBuffer()).equals(bytes));
        await assert.rejects(store.presignedUrl('packages/b/1.zip', 0), registryError('USAGE'));
        await assert.rejects(store.presignedUrl('../x', 60), registryError('USAGE'));
      } finally {
        store.close();
      }
    });

    it('fails a read whose connection is cut midway, rather than ending it short', TEST_TIMEOUT, async () => {
      const server = await startS3Server();
      const store = storeOn(server);
      const scratch = await mkdtemp(join(tmpdir(), 'mbr-blob-scratch-'));
      try {
        // Far more than loopback socket buffers hold, so most is still unsent at the cut.
        const bytes = randomBytes(48 * 1024 * 1024);
        await writeFile(join(scratch, 'big'), bytes);
        await store.putFile('big', join(scratch, 'big'));
        const blob = await store.read('big');
        assert.ok(blob);
        const chunks = blob.body[Symbol.asyncIterator]();
        assert.equal((await chunks.next()).done, false);
        server.dropConnections();
        let received = 0;
        await assert.rejects(async () => {
          for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
            received += (next.value as Buffer).length;
          }
        });
        assert.ok(received < bytes.length);
      } finally {
        store.close();
        await server.stop();
        await rm(scratch, { recursive: true, force: true });
      }
    });

    it('says UNAVAILABLE when the server has stopped', TEST_TIMEOUT, async () => {
      const server = await startS3Server();
      const store = storeOn(server, { timeoutMs: 2_000 });
      try {
        await store.putBytes('a', Buffer.from('x'));
        await server.stop();
        await assertUnavailable(store, /does not answer/);
      } finally {
        store.close();
      }
    });

    it(
      'says UNAVAILABLE when nothing listens on the port, and keeps an unsent file',
      TEST_TIMEOUT,
      async () => {
        const port = await unusedPort();
        const store = new S3BlobStore({
          endpoint: `http://127.0.0.1:${port}`,
          region: S3_TEST_REGION,
          bucket: 'registry-test',
          prefix: '',
          forcePathStyle: true,
          credentials: S3_TEST_CREDENTIALS,
          timeoutMs: 2_000,
        });
        const scratch = await mkdtemp(join(tmpdir(), 'mbr-blob-scratch-'));
        try {
          await assertUnavailable(store, /s3:\/\/registry-test\/ does not answer: .*ECONNREFUSED/);
          const file = join(scratch, 'f');
          await writeFile(file, 'kept for another try');
          await assert.rejects(store.putFile('k', file), registryError('UNAVAILABLE'));
          await access(file);
        } finally {
          store.close();
          await rm(scratch, { recursive: true, force: true });
        }
      },
    );

    it(
      'says UNAVAILABLE, not hangs, when the server takes connections but never answers',
      TEST_TIMEOUT,
      async () => {
        const silent = await startSilentServer();
        const store = storeOn(s3, { endpoint: silent.endpoint, timeoutMs: 2_000 });
        try {
          await assertUnavailable(store, /does not answer/);
        } finally {
          store.close();
          await silent.stop();
        }
      },
    );

    it('names a bucket that does not exist', TEST_TIMEOUT, async () => {
      const store = storeOn(s3, { bucket: 'no-such-bucket' });
      try {
        const expected = registryError('UNAVAILABLE', /bucket no-such-bucket does not exist/);
        // stat first: its HEAD gets a bare 404, which alone cannot tell bucket from key.
        await assert.rejects(store.stat('a'), expected);
        await assert.rejects(store.read('a'), expected);
        await assert.rejects(store.putBytes('a', Buffer.from('x')), expected);
        await assert.rejects(store.delete('a'), expected);
        await assert.rejects(listSorted(store, ''), expected);
      } finally {
        store.close();
      }
    });

    it('says access denied for refused credentials, without the secret', TEST_TIMEOUT, async () => {
      const secret = 'do-not-print-this-secret-0123456789';
      const store = storeOn(s3, { credentials: { accessKeyId: 'UNKNOWNKEY', secretAccessKey: secret } });
      try {
        const attempts = [
          () => store.stat('a'),
          () => store.read('a'),
          () => store.putBytes('a', Buffer.from('x')),
        ];
        for (const attempt of attempts) {
          await assert.rejects(attempt(), (error: unknown) => {
            registryError('UNAVAILABLE', /access denied/)(error);
            const shown = `${(error as RegistryError).message} ${(error as RegistryError).hint ?? ''}`;
            assert.ok(!shown.includes(secret), shown);
            return true;
          });
        }
      } finally {
        store.close();
      }
    });
  });
});

async function readBlob(store: BlobStore, key: string): Promise<Buffer> {
  const blob = await store.read(key);
  assert.ok(blob, `no blob ${key}`);
  const bytes = await collectBytes(blob.body);
  assert.equal(bytes.length, blob.size, `the stream of ${key} does not have the size read announced`);
  return bytes;
}

async function collectBytes(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function listSorted(store: BlobStore, folder: string): Promise<BlobInfo[]> {
  const listed: BlobInfo[] = [];
  for await (const info of store.list(folder)) listed.push(info);
  return listed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function digest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** An assert.rejects/throws validator: a RegistryError with `code` (and a matching message). */
function registryError(code: ErrorCode, message?: RegExp): (error: unknown) => true {
  return (error) => {
    assert.ok(error instanceof RegistryError, `expected a RegistryError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

/** stat, read, putBytes, delete and list all reject UNAVAILABLE (run at once: each may wait). */
async function assertUnavailable(store: BlobStore, message: RegExp): Promise<void> {
  const expected = registryError('UNAVAILABLE', message);
  await Promise.all([
    assert.rejects(store.stat('a'), expected, 'stat'),
    assert.rejects(store.read('a'), expected, 'read'),
    assert.rejects(store.putBytes('b', Buffer.from('x')), expected, 'putBytes'),
    assert.rejects(store.delete('a'), expected, 'delete'),
    assert.rejects(listSorted(store, ''), expected, 'list'),
  ]);
}

/** A port that was free a moment ago (bound, then released). */
async function unusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Accepts connections and reads requests, but never answers any. */
async function startSilentServer(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
