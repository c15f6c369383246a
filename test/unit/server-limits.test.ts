/**
 * The `[server]` limits, in-process: git processes at once (the rest wait in line, bounded),
 * request body and header sizes, and timeouts against slow clients.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ConfigSchema } from '../../src/config/schema.js';
import type { Registry } from '../../src/registry/registry.js';
import { DEFAULT_SERVER_LIMITS, type ServerLimits, serverLimits } from '../../src/server/limits.js';
import { type RunningServer, startServer } from '../../src/server/server.js';
import { git } from '../support/git.js';
import { exchange, formatRequest, trickle } from '../support/raw-http.js';
import {
  CORE_BUILD,
  countUploadPacks,
  createTestRegistry,
  LS_REFS,
  pkt,
  raw,
  UPLOAD_PACK_HEADERS,
  uploadPackRequest,
  waitFor,
} from '../support/test-registry.js';

interface GitCounts {
  running: number;
  queued: number;
  max: number;
}

describe('[server] limits in registry.toml', () => {
  test('the schema defaults are the server defaults', () => {
    assert.deepEqual(serverLimits(ConfigSchema.parse({}).server), DEFAULT_SERVER_LIMITS);
  });

  test('values are read, in bytes and durations', () => {
    const server = ConfigSchema.parse({
      server: {
        max_git_processes: 2,
        max_git_queue: 0,
        git_queue_timeout: '1m',
        max_request_body: 65536,
        upload_pack_cache_bytes: 0,
        max_header_size: 8192,
        headers_timeout: '2s',
        request_timeout: '30s',
        keep_alive_timeout: '1s',
        idle_timeout: '1h30m',
        shutdown_timeout: '0s',
        first_index_wait: '1m30s',
      },
    }).server;
    assert.deepEqual(serverLimits(server), {
      maxGitProcesses: 2,
      maxGitQueue: 0,
      gitQueueTimeoutMs: 60_000,
      maxRequestBody: 65536,
      uploadPackCacheBytes: 0,
      maxHeaderSize: 8192,
      headersTimeoutMs: 2000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 1000,
      idleTimeoutMs: 5_400_000,
      shutdownTimeoutMs: 0,
      firstIndexWaitMs: 90_000,
    });
  });

  test('nonsense is refused', () => {
    for (const server of [
      { max_git_processes: 0 },
      { max_git_queue: -1 },
      { max_request_body: 10 },
      { max_header_size: 1.5 },
      { headers_timeout: '0s' },
      { keep_alive_timeout: 'soon' },
      { shutdown_timeout: '11m' },
      { idle_timeout: '30d' },
    ]) {
      assert.equal(ConfigSchema.safeParse({ server }).success, false, JSON.stringify(server));
    }
  });
});

describe('server limits', () => {
  let root: string;
  let registry: Registry;
  const running: RunningServer[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-limits-'));
    ({ registry } = await createTestRegistry(root));
  });

  after(async () => {
    await Promise.all(running.map((server) => server.close()));
    await rm(root, { recursive: true, force: true });
  });

  async function serve(limits: Partial<ServerLimits>): Promise<RunningServer> {
    const server = await startServer(registry, { host: '127.0.0.1', port: 0, logger: false, limits });
    running.push(server);
    return server;
  }

  async function gitCounts(server: RunningServer): Promise<GitCounts> {
    const res = await fetch(`${server.url}/health`);
    assert.equal(res.status, 200);
    const { running, queued, max } = ((await res.json()) as { git: GitCounts }).git;
    return { running, queued, max };
  }

  /** Waits until /health shows these counts. */
  async function countsBecome(server: RunningServer, want: Partial<GitCounts>): Promise<void> {
    let last: GitCounts | undefined;
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      last = await gitCounts(server);
      if (Object.entries(want).every(([key, value]) => last?.[key as keyof GitCounts] === value)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.fail(`git counts ${JSON.stringify(last)}, wanted ${JSON.stringify(want)}`);
  }

  /**
   * Takes a git slot as a running git would. (A request body is read whole before git starts,
   * so no client can hold a slot by sending slowly: see the trickle tests below.)
   */
  async function holdGitSlot(server: RunningServer): Promise<{ destroy(): void }> {
    const release = await server.gitLimiter.acquire();
    return { destroy: release };
  }

  const uploadPacks = () => countUploadPacks(registry.layout.indexDir);
  const advertise = (server: RunningServer) =>
    raw(server.url, '/git/index/info/refs?service=git-upload-pack');

  async function clone(server: RunningServer, name: string): Promise<string> {
    const dir = join(root, name);
    await git(['clone', '--depth', '1', '--single-branch', '--no-tags', `${server.url}/git/index`, dir]);
    return readFile(join(dir, 'user', 'moonbitlang', 'core.index'), 'utf8');
  }

  // The line is tested without the answer cache, where identical requests would share one git.
  test('max_git_processes = 1: two concurrent clones wait their turn and both succeed', async () => {
    const server = await serve({ maxGitProcesses: 1, uploadPackCacheBytes: 0 });
    const holder = await holdGitSlot(server);
    await countsBecome(server, { running: 1, queued: 0, max: 1 });
    const clones = Promise.all([clone(server, 'turn-a'), clone(server, 'turn-b')]);
    // Both clones' first requests wait behind the held slot; no git runs.
    await countsBecome(server, { running: 1, queued: 2 });
    assert.equal(uploadPacks(), 0);
    holder.destroy();
    for (const index of await clones) assert.ok(index.includes(CORE_BUILD));
    await countsBecome(server, { running: 0, queued: 0 });
    await waitFor(() => uploadPacks() === 0, 'git to exit');
  });

  test('a full queue answers 503 with Retry-After at once; the waiter is served later', async () => {
    const server = await serve({ maxGitProcesses: 1, maxGitQueue: 1, uploadPackCacheBytes: 0 });
    const holder = await holdGitSlot(server);
    await countsBecome(server, { running: 1 });
    const waiting = advertise(server);
    await countsBecome(server, { queued: 1 });
    const refused = await advertise(server);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '5');
    assert.match(refused.body.toString('utf8'), /too many git requests/);
    holder.destroy();
    assert.equal((await waiting).status, 200);
    await countsBecome(server, { running: 0, queued: 0 });
  });

  test('waiting longer than git_queue_timeout answers 503; a client that leaves frees its place', async () => {
    const server = await serve({ maxGitProcesses: 1, gitQueueTimeoutMs: 300, uploadPackCacheBytes: 0 });
    const holder = await holdGitSlot(server);
    await countsBecome(server, { running: 1 });
    const started = Date.now();
    const late = await advertise(server);
    assert.equal(late.status, 503);
    assert.ok(Date.now() - started >= 250, `answered after ${Date.now() - started} ms`);
    assert.equal(late.headers['retry-after'], '5');

    const leaving = uploadPackRequest(new URL(server.url));
    leaving.on('error', () => {});
    leaving.end(LS_REFS);
    await countsBecome(server, { queued: 1 });
    leaving.destroy();
    await countsBecome(server, { running: 1, queued: 0 });
    holder.destroy();
    await countsBecome(server, { running: 0, queued: 0 });
    await waitFor(() => uploadPacks() === 0, 'git to exit');
  });

  test('slowloris: headers sent one byte per second are cut after headers_timeout', async () => {
    const server = await serve({ headersTimeoutMs: 1000 });
    const request = 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n\r\n';
    const slow = Array.from({ length: 10 }, () =>
      trickle(server.port, { data: request, intervalMs: 1000, timeoutMs: 10_000 }),
    );
    // And one that connects and says nothing at all.
    const silent = trickle(server.port, { intervalMs: 1000, timeoutMs: 10_000 });
    // Meanwhile everyone else is served as usual.
    for (let i = 0; i < 5; i++) {
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The first byte goes out after 1 s, Node checks every 500 ms: about 2 s (60 s without the limit).
    for (const reply of await Promise.all([...slow, silent])) {
      assert.notEqual(reply.end, 'timeout', 'the server never cut the slow client');
      assert.ok(reply.ms < 5000, `cut after ${reply.ms} ms`);
      assert.ok(reply.sent <= 5, `${reply.sent} bytes got through`);
      assert.ok(reply.status === 408 || reply.status === 0, String(reply.status));
    }
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });

  test('a body trickled slower than request_timeout is cut, and no git ever waits for it', async () => {
    const server = await serve({ headersTimeoutMs: 1000, requestTimeoutMs: 1500 });
    const head = formatRequest({
      method: 'POST',
      target: '/git/index/git-upload-pack',
      headers: [...Object.entries(UPLOAD_PACK_HEADERS), ['Content-Length', String(LS_REFS.length)]],
    });
    // The head at once, then the body one byte every 300 ms.
    const slow = trickle(server.port, { prefix: head, data: LS_REFS, intervalMs: 300, timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.deepEqual(await gitCounts(server), {
      running: 0,
      queued: 0,
      max: DEFAULT_SERVER_LIMITS.maxGitProcesses,
    });
    assert.equal(uploadPacks(), 0);
    const reply = await slow;
    assert.notEqual(reply.end, 'timeout', 'the server never cut the slow client');
    assert.ok(reply.ms < 5000, `cut after ${reply.ms} ms`);
    assert.ok(reply.sent < LS_REFS.length);
    assert.equal(uploadPacks(), 0);
  });

  test('headers beyond max_header_size get 431; smaller ones are served', async () => {
    const server = await serve({ maxHeaderSize: 4096 });
    const big = await exchange(
      server.port,
      formatRequest({ method: 'GET', target: '/health', headers: [['X-Big', 'a'.repeat(5000)]] }),
    );
    assert.equal(big.status, 431);
    const fine = await exchange(
      server.port,
      formatRequest({ method: 'GET', target: '/health', headers: [['X-Big', 'a'.repeat(3000)]] }),
    );
    assert.equal(fine.status, 200);
  });

  describe('max_request_body', () => {
    const limit = 64 * 1024;
    let server: RunningServer;
    before(async () => {
      server = await serve({ maxRequestBody: limit });
    });
    /** Well-formed: git would read all of it. */
    const lsRefs = (bytes: number) =>
      Buffer.from(
        `${pkt('command=ls-refs\n')}0001${pkt('ref-prefix refs/a\n').repeat(Math.ceil(bytes / 21))}0000`,
      );
    const post = (body: Buffer, headers: Array<[string, string]>) =>
      exchange(
        server.port,
        formatRequest({
          method: 'POST',
          target: '/git/index/git-upload-pack',
          headers: [...Object.entries(UPLOAD_PACK_HEADERS), ...headers],
          body,
        }),
      );

    test('a Content-Length over the limit is refused before git starts', async () => {
      const reply = await exchange(
        server.port,
        formatRequest({
          method: 'POST',
          target: '/git/index/git-upload-pack',
          headers: [...Object.entries(UPLOAD_PACK_HEADERS), ['Content-Length', String(limit + 1)]],
        }),
      );
      assert.equal(reply.status, 413);
      assert.equal(reply.headers.connection, 'close');
      assert.equal(uploadPacks(), 0);
    });

    test('a chunked body over the limit gets 413 and git is not left running', async () => {
      const body = lsRefs(2 * limit);
      const chunkedBody = Buffer.concat([
        Buffer.from(`${body.length.toString(16)}\r\n`),
        body,
        Buffer.from('\r\n0\r\n\r\n'),
      ]);
      const reply = await post(chunkedBody, [['Transfer-Encoding', 'chunked']]);
      assert.equal(reply.status, 413);
      await waitFor(() => uploadPacks() === 0, 'git to exit');
    });

    test('a gzip bomb is cut after the limit once inflated: 413, git not left running', async () => {
      const bomb = gzipSync(lsRefs(64 * limit));
      assert.ok(bomb.length < limit / 4, `the bomb is small when sent (${bomb.length} bytes)`);
      const reply = await post(bomb, [['Content-Encoding', 'gzip']]);
      assert.equal(reply.status, 413);
      assert.match(reply.body.toString('utf8'), /too large/);
      await waitFor(() => uploadPacks() === 0, 'git to exit');
      assert.deepEqual(await gitCounts(server), {
        running: 0,
        queued: 0,
        max: DEFAULT_SERVER_LIMITS.maxGitProcesses,
      });
    });

    test('bodies within the limit, plain or gzip, are served; a clone works', async () => {
      for (const headers of [[], [['Content-Encoding', 'gzip']]] as Array<Array<[string, string]>>) {
        const body = lsRefs(limit / 2);
        const reply = await post(headers.length ? gzipSync(body) : body, headers);
        assert.equal(reply.status, 200, JSON.stringify(headers));
        assert.match(reply.body.toString('utf8'), /0000$/);
      }
      assert.ok((await clone(server, 'small-limit')).includes(CORE_BUILD));
    });
  });

  test('keep_alive_timeout closes an idle kept-alive connection', async () => {
    const server = await serve({ keepAliveTimeoutMs: 300 });
    // One request, answered, then silence: the server closes the connection.
    const request = formatRequest({
      method: 'GET',
      target: '/health',
      headers: [['Connection', 'keep-alive']],
    });
    const reply = await trickle(server.port, { prefix: request, intervalMs: 1000, timeoutMs: 5000 });
    assert.equal(reply.status, 200);
    assert.equal(reply.end, 'closed');
    assert.ok(reply.ms < 2000, `closed after ${reply.ms} ms`);
  });

  test('idle_timeout cuts a client that went quiet mid-request; no git waited for it', async () => {
    const server = await serve({ idleTimeoutMs: 1000, requestTimeoutMs: 60_000 });
    const quiet = uploadPackRequest(new URL(server.url));
    quiet.on('error', () => {});
    const closed = new Promise<void>((resolve) => quiet.on('close', () => resolve()));
    quiet.write(LS_REFS.subarray(0, 10));
    const started = Date.now();
    await closed;
    assert.ok(Date.now() - started < 3000, `cut after ${Date.now() - started} ms`);
    assert.equal(uploadPacks(), 0);
    await countsBecome(server, { running: 0, queued: 0 });
  });
});
