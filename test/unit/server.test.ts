import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { archiveUrl } from '../../src/core/archive-url.js';
import { sha256Hex } from '../../src/core/checksum.js';
import { type IndexEntry, parseIndexLine } from '../../src/index/index-file.js';
import { type IndexSnapshot, ServedIndex } from '../../src/index/served-index.js';
import { openRegistry, type Registry } from '../../src/registry/registry.js';
import { IndexCache } from '../../src/server/index-cache.js';
import { type RunningServer, startServer } from '../../src/server/server.js';
import { GitError, git } from '../support/git.js';
import {
  archiveBytes,
  CAMEL,
  CORE,
  CORE_BUILD,
  countUploadPacks,
  createTestRegistry,
  LS_REFS,
  MARKER,
  makeEntry,
  NESTED,
  PKG,
  type Published,
  pkt,
  raw,
  uploadPackRequest,
  waitFor,
} from '../support/test-registry.js';

describe('server', () => {
  let root: string;
  let registry: Registry;
  let server: RunningServer;
  let base: string;
  const logLines: string[] = [];
  let published: Map<string, IndexEntry[]>;
  let publish: (items: Published[], message: string) => Promise<string>;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-server-'));
    ({ registry, published, publish } = await createTestRegistry(root));
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        callback();
      },
    });
    server = await startServer(registry, { host: '127.0.0.1', port: 0, logger: pino({}, sink) });
    base = server.url;
  });

  after(async () => {
    await server?.close();
    await rm(root, { recursive: true, force: true });
  });

  describe('info routes', () => {
    test('GET /health', async () => {
      const res = await fetch(`${base}/health`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(body.status, 'ok');
      assert.equal(body.mode, 'mirror');
      assert.match(String((body.index as { commit: unknown }).commit), /^[0-9a-f]{40}$/);
      // No upstream is in use in mirror mode without sync: nothing about sources or syncs.
      assert.equal(body.sources, undefined);
      assert.equal(body.sync, undefined);
      const { cache, ...slots } = body.git as { cache: { max_bytes: number }; running: number };
      assert.deepEqual(slots, { running: 0, queued: 0, max: 8 });
      assert.equal(cache.max_bytes, 64 * 1024 * 1024);
    });

    test('GET / names the registry, its sources without credentials, and what it serves', async () => {
      const res = await fetch(`${base}/`);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.ok(!text.includes(MARKER), 'token leaked');
      assert.ok(!text.includes('hunter2'), 'credentials leaked');
      assert.ok(!text.includes('auth'), 'auth field leaked');
      const body = JSON.parse(text) as {
        name: string;
        index: { commit: string; modules: number; versions: number };
        sources: Array<Record<string, unknown>>;
      };
      assert.equal(body.name, 't');
      assert.deepEqual(body.index, { commit: await registry.servedIndex.head(), modules: 4, versions: 5 });
      assert.deepEqual(body.sources, [
        {
          name: 'up',
          type: 'mooncakes',
          url: 'https://upstream.example',
          index_url: 'https://upstream.example/git/index',
          priority: 10,
          enabled: true,
          default: true,
        },
        {
          name: 'off',
          type: 'custom',
          url: 'https://other.example',
          index_url: 'https://other.example/git/index',
          priority: 100,
          enabled: false,
          default: false,
        },
      ]);
    });

    test('GET /user/<module> lists versions in semver order with source and line fields', async () => {
      const res = await fetch(`${base}/user/${CORE}`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {
        module: CORE,
        versions: [
          { version: '0.1.0', checksum: sha256Hex(archiveBytes(CORE, '0.1.0')), source: null, stored: true },
          {
            version: CORE_BUILD,
            checksum: sha256Hex(archiveBytes(CORE, CORE_BUILD)),
            source: 'up',
            stored: true,
            created_at: '2026-02-13T00:00:00Z',
          },
        ],
      });
      const pkg = (await (await fetch(`${base}/user/${PKG}`)).json()) as {
        versions: Array<Record<string, unknown>>;
      };
      assert.equal(pkg.versions[0]?.yanked, true);
      assert.equal(pkg.versions[0]?.created_at, '2025-01-01T00:00:00Z');
    });

    test('GET /user/<module> for nested, unicode and encoded-slash names', async () => {
      for (const [path, module] of [
        [`/user/${NESTED}`, NESTED],
        ['/user/tonyfettes%2Fjs%2Ftest', NESTED],
        [`/user/illusory0x0/${encodeURIComponent('🐫')}`, CAMEL],
      ] as const) {
        const res = await raw(base, path);
        assert.equal(res.status, 200, path);
        const body = JSON.parse(res.body.toString('utf8')) as { module: string; versions: unknown[] };
        assert.equal(body.module, module);
        assert.equal(body.versions.length, 1);
      }
    });

    test('unknown modules and invalid names are JSON 404s', async () => {
      for (const path of ['/user/nobody/nothing', '/user/justowner', '/user/a/b/', '/user/%ZZ/x']) {
        const res = await raw(base, path);
        assert.equal(res.status, 404, path);
        assert.match(res.headers['content-type'] as string, /application\/json/);
        assert.equal(typeof (JSON.parse(res.body.toString('utf8')) as { error: unknown }).error, 'string');
      }
    });

    test('symbols and assets are 404 JSON (moon reads that as "none")', async () => {
      for (const path of [
        '/symbols.zip',
        `/assets/${CORE}@${CORE_BUILD}/core.wasm`,
        '/assets/x.wasm.sha256',
      ]) {
        const res = await fetch(`${base}${path}`);
        assert.equal(res.status, 404, path);
        assert.ok('error' in ((await res.json()) as object));
      }
    });

    test('other methods on read routes are 405', async () => {
      for (const [method, path] of [
        ['POST', '/health'],
        ['DELETE', '/'],
        ['PUT', `/user/${CORE}/0.1.0.zip`],
        ['POST', `/user/${CORE}`],
        ['GET', '/git/index/git-upload-pack'],
      ] as const) {
        const res = await raw(base, path, { method });
        assert.equal(res.status, 405, `${method} ${path}`);
        assert.ok(res.headers.allow, 'Allow header');
      }
    });

    test('unknown paths are 404', async () => {
      assert.equal((await raw(base, '/nothing-here')).status, 404);
      assert.equal((await raw(base, '/registry.toml')).status, 404);
    });
  });

  describe('archives', () => {
    const coreBytes = archiveBytes(CORE, CORE_BUILD);
    const coreSum = sha256Hex(coreBytes);

    test('served by the form moon uses (%2F, %2B) and by literal slashes', async () => {
      const forms = [
        archiveUrl(base, CORE, CORE_BUILD),
        `${base}/user/moonbitlang%2Fcore%2F0.1.20260213%2B3382e0600.zip`,
        `${base}/user/moonbitlang/core/0.1.20260213%2B3382e0600.zip`,
        `${base}/user/moonbitlang/core/${CORE_BUILD}.zip`,
      ];
      for (const url of forms) {
        const res = await fetch(url);
        assert.equal(res.status, 200, url);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), coreBytes, url);
        assert.equal(res.headers.get('content-type'), 'application/zip');
        assert.equal(res.headers.get('content-length'), String(coreBytes.length));
        assert.equal(res.headers.get('etag'), `"${coreSum}"`);
        assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      }
    });

    test('nested and unicode module names', async () => {
      for (const [module, version] of [
        [NESTED, '0.1.0'],
        [CAMEL, '0.2.0'],
      ] as const) {
        for (const url of [archiveUrl(base, module, version), `${base}/user/${module}/${version}.zip`]) {
          const res = await fetch(url);
          assert.equal(res.status, 200, url);
          assert.deepEqual(Buffer.from(await res.arrayBuffer()), archiveBytes(module, version));
        }
      }
    });

    test('If-None-Match with the checksum ETag gives 304 without a body', async () => {
      for (const tag of [`"${coreSum}"`, `W/"${coreSum}"`, `"other", "${coreSum}"`, '*']) {
        const res = await raw(base, `/user/moonbitlang%2Fcore%2F0.1.20260213%2B3382e0600.zip`, {
          headers: { 'If-None-Match': tag },
        });
        assert.equal(res.status, 304, tag);
        assert.equal(res.body.length, 0);
        assert.equal(res.headers.etag, `"${coreSum}"`);
      }
      const stale = await raw(base, `/user/moonbitlang%2Fcore%2F0.1.20260213%2B3382e0600.zip`, {
        headers: { 'If-None-Match': '"0000"' },
      });
      assert.equal(stale.status, 200);
      assert.deepEqual(stale.body, coreBytes);
    });

    test('HEAD gives the headers and no body', async () => {
      const res = await raw(base, `/user/${CORE}/0.1.0.zip`, { method: 'HEAD' });
      assert.equal(res.status, 200);
      assert.equal(res.body.length, 0);
      assert.equal(res.headers['content-length'], String(archiveBytes(CORE, '0.1.0').length));
      assert.equal(res.headers.etag, `"${sha256Hex(archiveBytes(CORE, '0.1.0'))}"`);
    });

    test('a version not in the served index is 404 even when its file is on disk', async () => {
      const bytes = archiveBytes(CORE, '9.9.9');
      const path = registry.store.locate(CORE, '9.9.9', sha256Hex(bytes));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, bytes);
      const res = await raw(base, `/user/${CORE}/9.9.9.zip`);
      assert.equal(res.status, 404);
      assert.ok(!res.body.includes(bytes));
      assert.equal(typeof (JSON.parse(res.body.toString('utf8')) as { error: unknown }).error, 'string');
      assert.equal((await raw(base, '/user/nobody/nothing/1.0.0.zip')).status, 404);
    });

    test('a listed version whose archive is missing from the store is 404, not a crash', async () => {
      const bytes = archiveBytes(PKG, '1.2.3');
      const path = registry.store.locate(PKG, '1.2.3', sha256Hex(bytes));
      await rm(path);
      try {
        assert.equal((await raw(base, `/user/${PKG}/1.2.3.zip`)).status, 404);
      } finally {
        await writeFile(path, bytes);
      }
      assert.equal((await raw(base, `/user/${PKG}/1.2.3.zip`)).status, 200);
    });

    test('hostile URLs get 4xx and never file contents', async () => {
      const config = await readFile(join(registry.layout.indexDir, 'config'), 'utf8');
      assert.ok(config.includes('[core]'));
      const hostile = [
        '/user/..%2F..%2Fregistry.toml',
        '/user/../../registry.toml',
        '/user/%2e%2e/%2e%2e/x/1.0.0.zip',
        '/user/%2e%2e%2f%2e%2e%2fregistry.toml',
        '/user/..%2f..%2fdata%2findex%2fconfig',
        '/user/..%5c..%5cregistry.toml',
        '/user/moonbitlang%5c..%5c..%5cregistry.toml/1.0.0.zip',
        '/user/moonbitlang/core/0.1.0%00.zip',
        '/user/moonbitlang/core%00/0.1.0.zip',
        '/user/%2Fetc%2Fpasswd/1.0.0.zip',
        '/user//etc/passwd/1.0.0.zip',
        '/git/index/HEAD',
        '/git/index/config',
        '/git/index/objects/info/packs',
        '/git/index/info/refs',
        '/git/index/refs/heads/main',
        '/git/index/../../registry.toml',
        '/git/index/%2e%2e/%2e%2e/registry.toml',
        '/../registry.toml',
        '/%2e%2e/registry.toml',
        '/data/index/config',
        '/registry.toml',
      ];
      for (const path of hostile) {
        const res = await raw(base, path);
        assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
        const text = res.body.toString('utf8');
        assert.ok(!text.includes(MARKER), `${path} leaked registry.toml`);
        assert.ok(
          !text.includes('[core]') && !text.includes('repositoryformatversion'),
          `${path} leaked git config`,
        );
        assert.ok(!text.includes('ref: refs/heads'), `${path} leaked HEAD`);
        assert.ok(!text.includes('root:'), `${path} leaked /etc/passwd`);
      }
    });
  });

  describe('git smart HTTP', () => {
    let work: string;
    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'mbr-server-clones-'));
    });
    after(async () => {
      await rm(work, { recursive: true, force: true });
    });

    const coreIndex = (dir: string) => readFile(join(dir, 'user', 'moonbitlang', 'core.index'), 'utf8');

    test('advertisement: service line for v0, none for v2', async () => {
      const v0 = await raw(base, '/git/index/info/refs?service=git-upload-pack');
      assert.equal(v0.status, 200);
      assert.equal(v0.headers['content-type'], 'application/x-git-upload-pack-advertisement');
      assert.match(v0.headers['cache-control'] as string, /no-cache/);
      const v0Text = v0.body.toString('utf8');
      assert.ok(v0Text.startsWith('001e# service=git-upload-pack\n0000'), v0Text.slice(0, 60));
      const head = await registry.servedIndex.head();
      assert.ok(v0Text.includes(`${head} HEAD`) || v0Text.includes(`${head} refs/heads/main`));

      const v2 = await raw(base, '/git/index/info/refs?service=git-upload-pack', {
        headers: { 'Git-Protocol': 'version=2' },
      });
      assert.equal(v2.status, 200);
      const v2Text = v2.body.toString('utf8');
      assert.ok(v2Text.startsWith('000eversion 2\n'), v2Text.slice(0, 60));
      assert.ok(!v2Text.includes('# service='));
    });

    for (const version of [0, 2]) {
      test(`protocol v${version}: shallow clone, then pull sees a new version`, async () => {
        const dir = join(work, `clone-v${version}`);
        await git([
          '-c',
          `protocol.version=${version}`,
          'clone',
          '--depth',
          '1',
          '--single-branch',
          '--no-tags',
          `${base}/git/index`,
          dir,
        ]);
        assert.equal(
          await coreIndex(dir),
          `${published
            .get(CORE)
            ?.map((e) => e.raw)
            .join('\n')}\n`,
        );
        assert.equal(
          (await readFile(join(dir, 'user', 'illusory0x0', '🐫.index'), 'utf8')).includes('"0.2.0"'),
          true,
        );
        const newVersion = `0.2.${version}`;
        await publish([{ module: CORE, version: newVersion, bytes: archiveBytes(CORE, newVersion) }], 'more');
        await git(['-c', `protocol.version=${version}`, '-C', dir, 'pull', '--ff-only', 'origin', 'main']);
        assert.ok((await coreIndex(dir)).includes(`"version":"${newVersion}"`));
        assert.equal((await git(['-C', dir, 'rev-parse', 'HEAD'])).trim(), await registry.servedIndex.head());
        // The server follows the new commit for archives and info too.
        const res = await fetch(archiveUrl(base, CORE, newVersion));
        assert.equal(res.status, 200);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), archiveBytes(CORE, newVersion));
      });
    }

    test('plain `git pull origin main` (as moon runs it) works', async () => {
      const dir = join(work, 'clone-plain');
      await git(['clone', '--depth', '1', '--single-branch', '--no-tags', `${base}/git/index`, dir]);
      await publish([{ module: NESTED, version: '0.3.0', bytes: archiveBytes(NESTED, '0.3.0') }], 'nested');
      await git(['-C', dir, 'pull', 'origin', 'main']);
      assert.ok(
        (await readFile(join(dir, 'user', 'tonyfettes', 'js', 'test.index'), 'utf8')).includes('0.3.0'),
      );
    });

    test('push is refused with 403', async () => {
      const dir = join(work, 'clone-push');
      await git(['clone', '--depth', '1', '--single-branch', '--no-tags', `${base}/git/index`, dir]);
      await writeFile(join(dir, 'evil.txt'), 'x');
      await git(['-C', dir, 'add', 'evil.txt']);
      await git(['-C', dir, '-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-q', '-m', 'evil']);
      const before = await registry.servedIndex.head();
      await assert.rejects(git(['-C', dir, 'push', 'origin', 'HEAD:main']), (error: unknown) => {
        assert.ok(error instanceof GitError);
        assert.match(error.stderr, /403/);
        return true;
      });
      assert.equal(await registry.servedIndex.head(), before);

      const refs = await raw(base, '/git/index/info/refs?service=git-receive-pack');
      assert.equal(refs.status, 403);
      assert.match(refs.body.toString('utf8'), /read-only/);
      const post = await raw(base, '/git/index/git-receive-pack', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-git-receive-pack-request' },
        body: Buffer.from('0000'),
      });
      assert.equal(post.status, 403);
    });

    test('upload-pack POST, plain and gzip-compressed', async () => {
      const head = await registry.servedIndex.head();
      for (const gzip of [false, true]) {
        const res = await raw(base, '/git/index/git-upload-pack', {
          method: 'POST',
          headers: {
            'Content-Type': 'application/x-git-upload-pack-request',
            'Git-Protocol': 'version=2',
            ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
          },
          body: gzip ? gzipSync(LS_REFS) : LS_REFS,
        });
        assert.equal(res.status, 200, `gzip=${gzip}`);
        assert.equal(res.headers['content-type'], 'application/x-git-upload-pack-result');
        assert.equal(res.headers['cache-control'], 'no-cache');
        assert.ok(res.body.toString('utf8').includes(`${head} refs/heads/main`), res.body.toString('utf8'));
      }
    });

    test('upload-pack POST with a broken body or wrong type is a 4xx', async () => {
      const headers = {
        'Content-Type': 'application/x-git-upload-pack-request',
        'Git-Protocol': 'version=2',
      };
      const badGzip = await raw(base, '/git/index/git-upload-pack', {
        method: 'POST',
        headers: { ...headers, 'Content-Encoding': 'gzip' },
        body: Buffer.from('definitely not gzip'),
      });
      assert.equal(badGzip.status, 400);
      const badType = await raw(base, '/git/index/git-upload-pack', {
        method: 'POST',
        headers: { ...headers, 'Content-Type': 'text/plain' },
        body: LS_REFS,
      });
      assert.equal(badType.status, 415);
      const badEncoding = await raw(base, '/git/index/git-upload-pack', {
        method: 'POST',
        headers: { ...headers, 'Content-Encoding': 'br' },
        body: LS_REFS,
      });
      assert.equal(badEncoding.status, 415);
      // The server is still fine afterwards.
      assert.equal((await fetch(`${base}/health`)).status, 200);
    });

    test('a client that disconnects mid-request never starts git; the server goes on', async () => {
      const url = new URL(base);
      const req = uploadPackRequest(url);
      req.on('error', () => {});
      const closed = new Promise((resolve) => req.on('close', resolve));
      // An incomplete request: the body is read whole before git starts.
      req.write(LS_REFS.subarray(0, 10));
      const uploadPacks = () => countUploadPacks(registry.layout.indexDir);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(uploadPacks(), 0);
      req.destroy();
      await closed;
      assert.equal(uploadPacks(), 0);
      assert.equal((await fetch(`${base}/health`)).status, 200);
    });
  });

  test('access log has one line per request with method, url, status and ms', async () => {
    await fetch(`${base}/health?probe=1`);
    await new Promise((resolve) => setImmediate(resolve));
    const line = logLines
      .map((text) => JSON.parse(text) as Record<string, unknown>)
      .find((entry) => entry.url === '/health?probe=1');
    assert.ok(line, 'no access log line');
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 200);
    assert.equal(typeof line.ms, 'number');
  });
});

describe('server with a large index', () => {
  let root: string;
  let registry: Registry;
  let server: RunningServer;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-server-large-'));
    await writeFile(join(root, 'registry.toml'), '[registry]\nname = "large"\n');
    registry = await openRegistry(root);
    await registry.servedIndex.initialize('large');
    // Incompressible, so the pack is far larger than every pipe and socket buffer on the way.
    const filler = randomBytes(24 * 1024 * 1024).toString('base64');
    const entry = await makeEntry(registry, {
      module: 'big/one',
      version: '1.0.0',
      bytes: Buffer.from('big'),
      extra: { readme: filler },
    });
    await registry.servedIndex.publish(new Map([['big/one', [entry]]]), 'big');
    // A cache far smaller than the pack: the answer is not recorded, so git waits for the client.
    const limits = { uploadPackCacheBytes: 1024 * 1024 };
    server = await startServer(registry, { host: '127.0.0.1', port: 0, logger: false, limits });
  });

  after(async () => {
    await server?.close();
    await rm(root, { recursive: true, force: true });
  });

  test('a client that stops reading and goes away mid-pack gets git killed', async () => {
    const head = await registry.servedIndex.head();
    const body = Buffer.from(`${pkt('command=fetch\n')}0001${pkt(`want ${head}\n`)}${pkt('done\n')}0000`);
    const url = new URL(server.url);
    const req = uploadPackRequest(url);
    req.on('error', () => {});
    const response = new Promise<number>((resolve) => {
      req.on('response', (res) => {
        res.pause(); // read nothing: git must block on a full pipe, not buffer in the server
        res.on('error', () => {});
        resolve(res.statusCode ?? 0);
      });
    });
    req.end(body);
    assert.equal(await response, 200);
    const running = () => countUploadPacks(registry.layout.indexDir);
    assert.equal(running(), 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(running(), 1, 'git should still be waiting for the client');
    req.destroy();
    await waitFor(() => running() === 0, 'git upload-pack to be killed');
  });
});

describe('IndexCache', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-index-cache-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Counts full snapshot loads, the expensive part the cache exists to share. */
  class CountingIndex extends ServedIndex {
    loads = 0;
    override async snapshot(commit?: string): Promise<IndexSnapshot | undefined> {
      this.loads++;
      return super.snapshot(commit);
    }
  }

  test('loads once per commit, shares concurrent loads, follows main', async () => {
    const index = new CountingIndex(join(root, 'index'));
    const cache = new IndexCache(index);
    await index.initialize('t');
    const first = await Promise.all([cache.snapshot(), cache.snapshot(), cache.snapshot()]);
    assert.equal(index.loads, 1);
    assert.equal(first[0]?.commit, await index.head());
    assert.equal(first[0], first[2]);
    assert.equal(await cache.snapshot(), first[0]);
    assert.equal(index.loads, 1);

    const bytes = Buffer.from('x');
    const raw = JSON.stringify({ name: 'a/b', version: '1.0.0', checksum: sha256Hex(bytes) });
    const entry = parseIndexLine('a/b', raw);
    assert.ok(typeof entry !== 'string');
    const { commit } = await index.publish(new Map([['a/b', [entry]]]), 'add');
    const next = await Promise.all([cache.snapshot(), cache.snapshot()]);
    assert.equal(index.loads, 2);
    assert.equal(next[0]?.commit, commit);
    assert.equal(next[1]?.modules.get('a/b')?.get('1.0.0')?.checksum, sha256Hex(bytes));
  });

  test('an index without commits is an empty snapshot', async () => {
    const cache = new IndexCache(new ServedIndex(join(root, 'missing')));
    const snapshot = await cache.snapshot();
    assert.equal(snapshot.commit, undefined);
    assert.equal(snapshot.modules.size, 0);
  });
});
