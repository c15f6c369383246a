/**
 * The upload-pack answer cache through the real git client: every answer must be what git
 * itself would give, whether it came from memory, from an identical request in flight, or
 * from a warm-up; and a request that differs in one want, have or capability never gets
 * another request's answer.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServerLimits } from '../../src/server/limits.js';
import { type RunningServer, startServer } from '../../src/server/server.js';
import type { GitCacheStats } from '../../src/status/status-report.js';
import { git } from '../support/git.js';
import {
  archiveBytes,
  CORE,
  countUploadPacks,
  createTestRegistry,
  pkt,
  type TestRegistry,
  UPLOAD_PACK_HEADERS,
  waitFor,
} from '../support/test-registry.js';

describe('upload-pack answer cache', () => {
  let root: string;
  let test_: TestRegistry;
  const running: RunningServer[] = [];
  let version = 0;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-git-cache-'));
    const dir = join(root, 'registry');
    await mkdir(dir);
    test_ = await createTestRegistry(dir);
  });

  after(async () => {
    await Promise.all(running.map((server) => server.close()));
    await rm(root, { recursive: true, force: true });
  });

  /** A server of its own per test (the previous one closed: its warm-ups would run git too). */
  async function serve(limits: Partial<ServerLimits> = {}): Promise<RunningServer> {
    await Promise.all(running.splice(0).map((server) => server.close()));
    const server = await startServer(test_.registry, { host: '127.0.0.1', port: 0, logger: false, limits });
    running.push(server);
    return server;
  }

  async function stats(server: RunningServer): Promise<GitCacheStats> {
    const res = await fetch(`${server.url}/health`);
    return ((await res.json()) as { git: { cache: GitCacheStats } }).git.cache;
  }

  /** A new commit of the served index: one more version of a module. */
  async function commit(): Promise<string> {
    version++;
    const v = `9.0.${version}`;
    return test_.publish([{ module: CORE, version: v, bytes: archiveBytes(CORE, v) }], `add ${v}`);
  }

  const head = async () => (await test_.registry.servedIndex.head()) as string;

  /** What a clone sees: its HEAD commit and core's index file. */
  async function cloned(dir: string): Promise<{ commit: string; core: string }> {
    const commitId = (await git(['-C', dir, 'rev-parse', 'HEAD'])).trim();
    return { commit: commitId, core: await readFile(join(dir, 'user', 'moonbitlang', 'core.index'), 'utf8') };
  }

  /** What the served index holds at its tip, read with git from the registry's repository. */
  async function expected(): Promise<{ commit: string; core: string }> {
    const gitDir = test_.registry.layout.indexDir;
    const commitId = await head();
    const core = await git(['--git-dir', gitDir, 'show', `${commitId}:user/moonbitlang/core.index`]);
    return { commit: commitId, core };
  }

  async function clone(server: RunningServer, name: string, options: string[] = []): Promise<string> {
    const dir = join(root, name);
    await git(['clone', ...options, '--single-branch', '--no-tags', `${server.url}/git/index`, dir]);
    return dir;
  }

  test('clones (v0 and v2, shallow and full) are right, and the same clone again runs no git', async () => {
    const server = await serve();
    for (const protocol of ['0', '2']) {
      for (const depth of [['--depth', '1'], []]) {
        const options = ['-c', `protocol.version=${protocol}`, ...depth];
        const name = `clone-v${protocol}-${depth.length ? 'shallow' : 'full'}`;
        const first = await clone(server, `${name}-a`, options);
        assert.deepEqual(await cloned(first), await expected(), name);
        const before = await stats(server);
        const second = await clone(server, `${name}-b`, options);
        assert.deepEqual(await cloned(second), await expected(), name);
        const afterwards = await stats(server);
        assert.equal(afterwards.misses, before.misses, `${name}: the second clone ran git`);
        assert.ok(afterwards.hits > before.hits, name);
      }
    }
    assert.ok((await stats(server)).entries > 0);
  });

  test('pulls after one and after several commits, and a client far behind, get the new tip', async () => {
    const server = await serve();
    const shallow = await clone(server, 'pull-shallow', ['--depth', '1']);
    const full = await clone(server, 'pull-full');
    await commit();
    await git(['-C', shallow, 'pull', 'origin', 'main']);
    assert.deepEqual(await cloned(shallow), await expected());
    for (let i = 0; i < 3; i++) await commit();
    await git(['-C', shallow, 'pull', 'origin', 'main']);
    assert.deepEqual(await cloned(shallow), await expected());
    // The full clone is four commits behind.
    await git(['-C', full, 'pull', 'origin', 'main']);
    assert.deepEqual(await cloned(full), await expected());
    const log = await git(['-C', full, 'rev-list', '--count', 'HEAD']);
    assert.equal(
      Number(log),
      Number(await git(['--git-dir', test_.registry.layout.indexDir, 'rev-list', '--count', 'main'])),
    );
  });

  test('after a commit, the clone and the pull that clients made before are computed ahead of them', async () => {
    const server = await serve();
    // Teaches the server the shapes of this git's shallow clone and of its pull.
    const early = await clone(server, 'warm-early', ['--depth', '1']);
    await commit();
    const late = await clone(server, 'warm-late', ['--depth', '1']);
    await git(['-C', early, 'pull', 'origin', 'main']);
    await commit();
    const until = Date.now() + 15_000;
    while ((await stats(server)).warmups < 3 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Wait for the warm-ups in flight to land.
    await waitFor(() => countUploadPacks(test_.registry.layout.indexDir) === 0, 'warm-ups to finish', 15_000);
    const before = await stats(server);
    assert.ok(before.warmups >= 3, `warm-ups: ${before.warmups}`);
    await clone(server, 'warm-fresh', ['--depth', '1']);
    await git(['-C', late, 'pull', 'origin', 'main']);
    assert.deepEqual(await cloned(late), await expected());
    const afterwards = await stats(server);
    assert.equal(afterwards.misses, before.misses, 'a client after the commit ran git');
  });

  test('200 identical clones at once: all right, git runs once per distinct request', async () => {
    const server = await serve();
    await commit(); // a tip nobody asked about yet
    const before = await stats(server);
    const dirs = await Promise.all(
      Array.from({ length: 200 }, (_, i) => clone(server, `many-${i}`, ['--depth', '1'])),
    );
    const want = await expected();
    for (const dir of dirs) assert.deepEqual(await cloned(dir), want);
    const afterwards = await stats(server);
    // info/refs, ls-refs and fetch: one git run each (a warm-up may have done some).
    assert.ok(afterwards.misses - before.misses <= 3, `git ran ${afterwards.misses - before.misses} times`);
    assert.ok(afterwards.hits + afterwards.shared - before.hits - before.shared >= 597);
  });

  /** A raw v2 fetch of the tip; `args` replace the defaults. */
  async function fetchRaw(server: RunningServer, args: string[]): Promise<Buffer> {
    const body = `${pkt('command=fetch\n')}${pkt('agent=test/1\n')}0001${args.map((a) => pkt(`${a}\n`)).join('')}0000`;
    const res = await fetch(`${server.url}/git/index/git-upload-pack`, {
      method: 'POST',
      headers: UPLOAD_PACK_HEADERS,
      body,
    });
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  }

  test('an answer is never served for a request that differs in one want, have or capability', async () => {
    const server = await serve();
    const tip = await head();
    const parent = (await git(['--git-dir', test_.registry.layout.indexDir, 'rev-parse', `${tip}^`])).trim();
    const base = ['thin-pack', 'ofs-delta', 'no-progress', `want ${tip}`, 'done'];
    const first = await fetchRaw(server, base);
    const before = await stats(server);
    assert.deepEqual(await fetchRaw(server, base), first);
    assert.equal((await stats(server)).hits, before.hits + 1);
    const variants = {
      want: base.map((a) => (a.startsWith('want') ? `want ${parent}` : a)),
      have: [...base.slice(0, -1), `have ${parent}`, 'done'],
      capability: base.filter((a) => a !== 'no-progress'),
    };
    for (const [what, args] of Object.entries(variants)) {
      const missesBefore = (await stats(server)).misses;
      const answer = await fetchRaw(server, args);
      assert.equal((await stats(server)).misses, missesBefore + 1, `${what}: answered from the cache`);
      assert.notDeepEqual(answer, first, `${what}: got the other request's answer`);
    }
  });

  test('answers larger than the bound are not kept, and the bound holds', async () => {
    const server = await serve({ uploadPackCacheBytes: 2048 });
    await clone(server, 'bound-a');
    const s = await stats(server);
    assert.ok(s.bytes <= 2048, `${s.bytes} bytes kept`);
    const before = s.misses;
    await clone(server, 'bound-b');
    assert.ok((await stats(server)).misses > before, 'the full pack (over 2 KiB) was cached');
    assert.ok((await stats(server)).evictions + (await stats(server)).entries >= 1);
  });

  test('a git that fails mid-answer: the client fails, nothing is cached, the next request runs git', async () => {
    const server = await serve();
    await commit();
    // A `git` on PATH that cuts upload-pack's answer short and exits 1, while a marker exists.
    const bin = join(root, 'failing-git');
    const marker = join(root, 'fail-now');
    await mkdir(bin, { recursive: true });
    const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
    await writeFile(
      join(bin, 'git'),
      `#!/bin/sh
case "$*" in
  *"upload-pack --stateless-rpc /"*)
    if [ -e "${marker}" ]; then "${realGit}" "$@" | head -c 40; exit 1; fi ;;
esac
exec "${realGit}" "$@"
`,
    );
    await chmod(join(bin, 'git'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      await writeFile(marker, '');
      const failed = await clone(server, 'failing', ['--depth', '1']).then(
        () => 'succeeded',
        () => 'failed',
      );
      assert.equal(failed, 'failed');
      await rm(marker);
      const before = await stats(server);
      const dir = await clone(server, 'after-failure', ['--depth', '1']);
      assert.deepEqual(await cloned(dir), await expected());
      assert.ok((await stats(server)).misses > before.misses, 'the failed answer was cached');
    } finally {
      process.env.PATH = path;
    }
  });

  test('a Git-Protocol value git does not read as v2 never gets or gives a v2 answer', async () => {
    const server = await serve();
    const advertise = async (gitProtocol: string) => {
      const res = await fetch(`${server.url}/git/index/info/refs?service=git-upload-pack`, {
        headers: { 'Git-Protocol': gitProtocol },
      });
      assert.equal(res.status, 200);
      return res.text();
    };
    // git reads `version=02` as no version at all: a v0 advertisement.
    assert.match(await advertise('version=02'), /^001e# service=git-upload-pack\n0000/);
    assert.match(await advertise('version=2'), /^000eversion 2\n/);
    assert.match(await advertise('version=3'), /^001e# service=git-upload-pack\n0000/);
  });

  test('request bodies share a bounded amount of memory: beyond it a 503, and it comes back', async () => {
    const maxRequestBody = 16 * 1024;
    const server = await serve({ maxRequestBody });
    const tip = await head();
    const haves = (bytes: number) => pkt(`have ${tip}\n`).repeat(Math.floor(bytes / 50));
    // Four bodies of 15 KiB that never end hold almost all of the 4 x 16 KiB.
    const url = new URL(`${server.url}/git/index/git-upload-pack`);
    const open = Array.from({ length: 4 }, () => {
      const req = request(url, { method: 'POST', headers: UPLOAD_PACK_HEADERS });
      req.on('error', () => {});
      req.write(`${pkt('command=fetch\n')}0001${haves(15 * 1024)}`);
      return req;
    });
    const post = async (body: string) =>
      (await fetch(url, { method: 'POST', headers: UPLOAD_PACK_HEADERS, body }).catch(() => undefined))
        ?.status;
    const fetchBody = (extra: string) =>
      `${pkt('command=fetch\n')}0001${extra}${pkt(`want ${tip}\n`)}${pkt('done\n')}0000`;
    let status: number | undefined;
    await waitFor(
      async () => {
        status = await post(fetchBody(haves(15 * 1024)));
        return status === 503;
      },
      'a body beyond the shared memory to be refused',
      10_000,
    );
    for (const req of open) req.destroy();
    await waitFor(async () => (await post(fetchBody(''))) === 200, 'the memory to come back', 10_000);
  });

  test('only requests git answered cleanly are warmed up after the next commit', async () => {
    const server = await serve();
    await server.answers.checkHead();
    await server.answers.warmedUp();
    const tip = await head();
    const raw = async (args: string[]) => {
      const body = `${pkt('command=fetch\n')}0001${args.map((a) => pkt(`${a}\n`)).join('')}0000`;
      const res = await fetch(`${server.url}/git/index/git-upload-pack`, {
        method: 'POST',
        headers: UPLOAD_PACK_HEADERS,
        body,
      });
      await res.arrayBuffer();
      return res.status;
    };
    // git refuses an argument it does not know: the client's error, and nothing to learn.
    for (let i = 0; i < 3; i++) assert.equal(await raw(['no-such-argument', `want ${tip}`, 'done']), 400);
    assert.equal(await raw(['thin-pack', 'deepen 1', `want ${tip}`, 'done']), 200);
    const before = (await stats(server)).warmups;
    await commit();
    await server.answers.checkHead();
    await server.answers.warmedUp();
    assert.equal((await stats(server)).warmups - before, 1);
  });

  test('/metrics reports hits, misses, bytes and entries', async () => {
    const server = await serve();
    await clone(server, 'metrics-a', ['--depth', '1']);
    await clone(server, 'metrics-b', ['--depth', '1']);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const value = (line: RegExp) => Number(line.exec(text)?.[1] ?? Number.NaN);
    assert.ok(value(/moonbit_registry_git_cache_requests_total\{result="hit"\} (\d+)/) >= 3);
    assert.ok(value(/moonbit_registry_git_cache_requests_total\{result="miss"\} (\d+)/) >= 3);
    assert.ok(value(/moonbit_registry_git_cache_bytes (\d+)/) > 0);
    assert.ok(value(/moonbit_registry_git_cache_entries (\d+)/) >= 3);
    assert.equal(value(/moonbit_registry_git_cache_max_bytes (\d+)/), 64 * 1024 * 1024);
  });
});
