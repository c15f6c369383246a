/**
 * The whole user story, end to end, with the real CLI as a child process: init, add a source,
 * mirror, serve, and act as `moon` against the served registry.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import semver from 'semver';

import { formatBytes } from '../../src/core/format-bytes.js';
import {
  type CliResult,
  errorLines,
  initRegistryWithSource,
  isRecord,
  parseJsonSummary,
  type RunningServer,
  runCli,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture, indexFilePath, repoRoot } from '../support/fixture.js';
import { GitError, git } from '../support/git.js';
import {
  archiveUrl,
  download,
  latest,
  type RegistryIndex,
  ResolveError,
  readIndex,
  readIndexDir,
  resolve,
  update,
} from '../support/moon-client.js';

// ---------------------------------------------------------------------------------------------
// Helpers

interface TextSummary {
  modules: number;
  versions: number;
  downloaded: number;
  size: string;
  skipped: number;
  failed: number;
  seconds: number;
}

const SUMMARY_LINE =
  /Mirrored (\d+) modules, (\d+) versions: (\d+) downloaded \(([^)]+)\), (\d+) already present, (\d+) failed, in ([\d.]+)s/;

function parseTextSummary(stdout: string): TextSummary {
  const match = SUMMARY_LINE.exec(stdout);
  assert.ok(match, `no summary line in:\n${stdout}`);
  const num = (i: number) => Number(match[i]);
  return {
    modules: num(1),
    versions: num(2),
    downloaded: num(3),
    size: match[4] ?? '',
    skipped: num(5),
    failed: num(6),
    seconds: num(7),
  };
}

function servedGitDir(root: string): string {
  return path.join(root, 'data', 'index');
}

async function servedHead(root: string): Promise<string> {
  return (await git(['--git-dir', servedGitDir(root), 'rev-parse', 'refs/heads/main'])).trim();
}

async function servedCommitCount(root: string): Promise<number> {
  return Number((await git(['--git-dir', servedGitDir(root), 'rev-list', '--count', 'main'])).trim());
}

const EMPTY_INDEX = (): RegistryIndex => ({ modules: new Map(), skippedLines: 0 });

/** An index work tree read like moon reads it; a fresh registry has no user/ folder yet. */
async function readWorkTree(dir: string): Promise<RegistryIndex> {
  return existsSync(path.join(dir, 'user')) ? readIndexDir(dir) : EMPTY_INDEX();
}

/** What the registry's served index lists, read straight from data/index (no server). */
async function servedIndexOnDisk(root: string, scratch: string): Promise<RegistryIndex> {
  const dir = path.join(scratch, `served-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  await git(['clone', '-q', servedGitDir(root), dir]);
  return readWorkTree(dir);
}

/** Runs fn over items with at most `limit` in flight. */
async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface Listed {
  module: string;
  version: string;
  checksum: string;
}

function listedVersions(index: RegistryIndex): Listed[] {
  const out: Listed[] = [];
  for (const [module, versions] of index.modules) {
    for (const [version, entry] of versions) {
      assert.ok(entry.checksum, `${module}@${version} has no checksum in the served index`);
      out.push({ module, version, checksum: entry.checksum });
    }
  }
  return out;
}

/** Downloads (checksum-verified by the client) every version the index lists. */
async function downloadAll(url: string, items: Listed[]): Promise<void> {
  await forEachLimit(items, 16, async (item) => {
    await download(url, item.module, item.version, item.checksum);
  });
}

function assertNoStack(result: CliResult): void {
  assert.doesNotMatch(`${result.stdout}${result.stderr}`, /\n\s+at .+\(.*:\d+:\d+\)/, 'stack trace printed');
}

async function countFiles(dir: string, suffix: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith(suffix)).length;
}

function fixtureLine(fixture: Fixture, module: string, version: string): string {
  const info = fixture.modules.get(module)?.get(version);
  assert.ok(info, `fixture has no ${module}@${version}`);
  return info.line;
}

// ---------------------------------------------------------------------------------------------
// Shared state for the file

const NESTED = 'tonyfettes/js/test';
const LEX_RUNTIME = 'moonbitlang/lex/runtime';
const CAMEL = 'illusory0x0/🐫';
const UNMIRRORED = 'gmlewis/base64';
/** Has dependencies under other owners, and those have dependencies of their own. */
const WITH_DEPS = 'iceBear67/mnbt';

let fixture: Fixture;
let upstream: FakeUpstream;
let main: { root: string; remove: () => Promise<void> };
let scratch: { path: string; remove: () => Promise<void> };
let server: RunningServer | undefined;
/** A registry just after init + source add, never mirrored into: copied for fresh registries. */
let pristine: string;
const cleanups: Array<() => Promise<void>> = [];
let freshCount = 0;

/** A fresh registry (as `initRegistryWithSource` leaves it), without paying for 4 more CLI runs. */
async function freshRegistry(): Promise<string> {
  const root = path.join(scratch.path, `fresh-${freshCount++}`);
  await cp(pristine, root, { recursive: true });
  return root;
}

/** The main registry's server, started once. */
async function mainServer(): Promise<RunningServer> {
  if (!server) server = await startServe(main.root);
  return server;
}

function moonHome(name: string): string {
  return path.join(scratch.path, 'moon-homes', name);
}

/** moonbitlang modules one level deep, as `moonbitlang/*` matches them. */
function oneLevelModules(owner: string): string[] {
  return [...fixture.modules.keys()].filter((m) => m.startsWith(`${owner}/`) && m.split('/').length === 2);
}

describe('moonbit-registry end to end', () => {
  before(async () => {
    fixture = await buildFixture();
    upstream = await FakeUpstream.start({ fixture });
    main = await initRegistryWithSource('up', upstream.url);
    scratch = await tempDir('mr-serve-scratch-');
    pristine = path.join(scratch.path, 'pristine');
    await cp(main.root, pristine, { recursive: true });
  });

  after(async () => {
    const jobs: Array<Promise<void>> = [];
    if (server) jobs.push(server.stop());
    for (const cleanup of cleanups) jobs.push(cleanup());
    await Promise.allSettled(jobs);
    await Promise.allSettled([upstream?.close(), fixture?.cleanup(), main?.remove(), scratch?.remove()]);
  });

  describe('mirror and serve: the user story', () => {
    test('mirror "moonbitlang/*": exit 0, plausible summary, archives on disk', async () => {
      const matched = oneLevelModules('moonbitlang');
      const matchedVersions = matched.reduce((n, m) => n + (fixture.modules.get(m)?.size ?? 0), 0);
      assert.ok(
        matched.length > 10 && matchedVersions > 100,
        'fixture precondition: many moonbitlang modules',
      );
      const before = upstream.archiveRequests;

      const result = await runCli(['mirror', 'moonbitlang/*'], { cwd: main.root });
      assert.equal(result.code, 0, result.stderr);
      const summary = parseTextSummary(result.stdout);
      assert.ok(summary.modules >= matched.length, `modules ${summary.modules} < ${matched.length}`);
      assert.ok(summary.versions >= matchedVersions, `versions ${summary.versions} < ${matchedVersions}`);
      assert.equal(summary.downloaded, summary.versions, 'a fresh registry downloads everything selected');
      assert.equal(summary.skipped, 0);
      assert.equal(summary.failed, 0);
      assert.ok(summary.seconds > 0);
      assert.equal(upstream.archiveRequests - before, summary.downloaded, 'one request per archive');

      // The served index lists exactly what was selected, and the reported size adds up.
      const served = await servedIndexOnDisk(main.root, scratch.path);
      const listed = listedVersions(served);
      assert.equal(listed.length, summary.versions);
      assert.equal(served.modules.size, summary.modules);
      for (const module of matched) {
        assert.equal(
          served.modules.get(module)?.size,
          fixture.modules.get(module)?.size,
          `every version of ${module} served`,
        );
      }
      let bytes = 0;
      for (const item of listed) {
        const info = fixture.modules.get(item.module)?.get(item.version);
        assert.ok(info, `${item.module}@${item.version} is served but not upstream`);
        assert.equal(item.checksum, info.checksum);
        bytes += info.size;
      }
      assert.equal(summary.size, formatBytes(bytes));
      assert.equal(await countFiles(path.join(main.root, 'data', 'packages'), '.zip'), summary.downloaded);
      assert.match(
        result.stdout,
        new RegExp(`Served index: ${summary.modules} modules, ${summary.versions}`),
      );
    });

    test('second run with -q --json: all summary fields, nothing downloaded', async () => {
      const before = upstream.archiveRequests;
      const headBefore = await servedHead(main.root);
      const result = await runCli(['mirror', '-q', '--json', 'moonbitlang/*'], { cwd: main.root });
      assert.equal(result.code, 0, result.stderr);
      const summary = parseJsonSummary(result);
      assert.equal(summary.downloaded, 0);
      assert.equal(summary.failed, 0);
      assert.equal(summary.bytes, 0);
      assert.deepEqual(summary.failures, []);
      assert.equal(summary.skipped, summary.versions);
      assert.ok(summary.versions > 100 && summary.modules > 10);
      assert.ok(summary.seconds >= 0);
      assert.equal(upstream.archiveRequests, before, 'no archive requested again');
      assert.equal(await servedHead(main.root), headBefore, 'nothing changed: no new commit');
      // -q: no progress lines on stderr.
      assert.doesNotMatch(result.stderr, /downloaded \d+\/\d+ archives/);
    });

    test('mirror nested and unicode modules', async () => {
      for (const module of [NESTED, LEX_RUNTIME, CAMEL]) {
        assert.ok(fixture.modules.has(module), `fixture precondition: ${module}`);
      }
      const result = await runCli(['mirror', NESTED, 'moonbitlang/lex/*', CAMEL], { cwd: main.root });
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      const summary = parseTextSummary(result.stdout);
      assert.equal(summary.failed, 0);
      const served = await servedIndexOnDisk(main.root, scratch.path);
      for (const module of [NESTED, LEX_RUNTIME, CAMEL]) {
        assert.deepEqual(
          [...(served.modules.get(module)?.keys() ?? [])].sort(),
          [...(fixture.modules.get(module)?.keys() ?? [])].sort(),
          `all versions of ${module} served`,
        );
      }
      const files = await git(['--git-dir', servedGitDir(main.root), 'ls-tree', '-r', '--name-only', 'main']);
      assert.ok(files.includes(`user/${NESTED}.index`), files);
    });

    test('a pattern that matches nothing: non-zero exit, one-line error naming it', async () => {
      const headBefore = await servedHead(main.root);
      const result = await runCli(['mirror', 'nosuchowner-xyz/*'], { cwd: main.root });
      assert.notEqual(result.code, 0);
      const errors = errorLines(result.stderr);
      assert.equal(errors.length, 1, result.stderr);
      assert.match(errors[0] ?? '', /nosuchowner-xyz\/\*/);
      assertNoStack(result);
      assert.equal(await servedHead(main.root), headBefore);
    });

    test('moon: shallow clone, resolve and download x, core (+ version), nested, unicode; both URL forms', async () => {
      const { url } = await mainServer();
      const home = moonHome('main');
      const updated = await update(url, home);
      assert.equal(updated.action, 'clone');
      const shallow = (await git(['-C', updated.indexDir, 'rev-parse', '--is-shallow-repository'])).trim();
      assert.equal(shallow, 'true', 'moon clones with --depth 1');
      assert.equal(
        (await git(['-C', updated.indexDir, 'rev-parse', 'HEAD'])).trim(),
        await servedHead(main.root),
      );

      const index = await readIndex(home);
      assert.equal(index.skippedLines, 0);
      const x = latest(index, 'moonbitlang/x');
      const core = latest(index, 'moonbitlang/core');
      assert.ok(x && core, 'x and core are served');
      assert.equal(x, latest(fixtureIndexOf('moonbitlang/x'), 'moonbitlang/x'), 'latest x as upstream');
      assert.ok(core.includes('+'), `core's latest carries build metadata: ${core}`);

      for (const [module, version] of [
        ['moonbitlang/x', x],
        ['moonbitlang/core', core],
        [NESTED, latest(index, NESTED)],
        [LEX_RUNTIME, latest(index, LEX_RUNTIME)],
        [CAMEL, latest(index, CAMEL)],
      ] as const) {
        assert.ok(version, `${module} is served`);
        const checksum = index.modules.get(module)?.get(version)?.checksum;
        assert.ok(checksum);
        const encoded = await download(url, module, version, checksum);
        const literal = await download(url, module, version, checksum, { literalSlashes: true });
        assert.deepEqual(encoded, literal);
        assert.deepEqual(
          encoded,
          fixture.archiveFor(module, version),
          `${module}@${version} bytes as upstream`,
        );
      }

      // What `moon add moonbitlang/x` then a build does: resolve and fetch everything.
      const picked = resolve(index, { 'moonbitlang/x': x });
      assert.ok(picked.size >= 1);
      for (const [module, version] of picked) {
        const checksum = index.modules.get(module)?.get(version)?.checksum;
        assert.ok(checksum, `${module}@${version} has a checksum`);
        await download(url, module, version, checksum);
      }
    });

    test('every version the served index lists downloads with its checksum', async () => {
      const { url } = await mainServer();
      const index = await readIndex(moonHome('main'));
      const listed = listedVersions(index);
      assert.ok(listed.length > 500);
      await downloadAll(url, listed);
    });

    test('an unmirrored module is absent and its archive URL is a 404 with a JSON body', async () => {
      const { url } = await mainServer();
      const version = [...(fixture.modules.get(UNMIRRORED)?.keys() ?? [])][0];
      assert.ok(version, `fixture precondition: ${UNMIRRORED} exists upstream`);
      const index = await readIndex(moonHome('main'));
      assert.equal(index.modules.has(UNMIRRORED), false);
      assert.equal(
        [...index.modules.keys()].some((m) => m.startsWith('gmlewis/')),
        false,
        'nothing of another owner that is no dependency',
      );
      for (const literalSlashes of [false, true]) {
        const res = await fetch(archiveUrl(url, UNMIRRORED, version, literalSlashes));
        assert.equal(res.status, 404);
        assert.match(res.headers.get('content-type') ?? '', /application\/json/);
        const body: unknown = await res.json();
        assert.ok(isRecord(body) && typeof body.error === 'string', JSON.stringify(body));
      }
    });

    test('served lines are byte for byte the upstream lines', async () => {
      await mainServer();
      const file = path.join(moonHome('main'), 'registry', 'index', indexFilePath('moonbitlang/x'));
      const served = (await readFile(file, 'utf8')).split('\n').filter((line) => line !== '');
      const upstreamText = await git([
        '--git-dir',
        fixture.gitDir,
        'cat-file',
        'blob',
        `main:${indexFilePath('moonbitlang/x')}`,
      ]);
      const upstreamLines = new Set(upstreamText.split('\n'));
      const versions = fixture.modules.get('moonbitlang/x');
      assert.ok(versions);
      assert.equal(served.length, versions.size, 'one line per version');
      const seen = new Set<string>();
      for (const line of served) {
        assert.ok(upstreamLines.has(line), `served line is not an upstream line:\n${line}`);
        const version = (JSON.parse(line) as { version: string }).version;
        assert.equal(line, fixtureLine(fixture, 'moonbitlang/x', version));
        seen.add(version);
      }
      assert.equal(seen.size, versions.size);
      // Fields the registry itself does not use survive (spacing and escapes included).
      assert.ok(served.some((line) => /"(readme|repository|license|keywords|description)":/.test(line)));
      const camelFile = path.join(moonHome('main'), 'registry', 'index', indexFilePath(CAMEL));
      for (const line of (await readFile(camelFile, 'utf8')).split('\n').filter(Boolean)) {
        const version = (JSON.parse(line) as { version: string }).version;
        assert.equal(line, fixtureLine(fixture, CAMEL, version));
      }
    });

    test('git protocol v0 and v2 clones both work', async () => {
      const { url } = await mainServer();
      const head = await servedHead(main.root);
      const trees: string[] = [];
      for (const protocolVersion of [0, 2] as const) {
        const home = moonHome(`proto-v${protocolVersion}`);
        const result = await update(url, home, { protocolVersion });
        assert.equal(result.action, 'clone');
        assert.equal((await git(['-C', result.indexDir, 'rev-parse', 'HEAD'])).trim(), head);
        trees.push(await git(['-C', result.indexDir, 'ls-tree', '-r', 'HEAD']));
      }
      assert.equal(trees[0], trees[1]);
      const refs = await git(['-c', 'protocol.version=2', 'ls-remote', `${url}/git/index`]);
      assert.match(refs, new RegExp(`^${head}\\trefs/heads/main$`, 'm'));
    });

    test('pushing to the served index is refused', async () => {
      const { url } = await mainServer();
      const head = await servedHead(main.root);
      const work = path.join(scratch.path, 'push-clone');
      await git(['clone', '-q', `${url}/git/index`, work]);
      await writeFile(path.join(work, 'user', 'evil.index'), '{}\n');
      await git(['-C', work, 'add', '-A']);
      await git([
        '-C',
        work,
        '-c',
        'user.name=x',
        '-c',
        'user.email=x@example.invalid',
        'commit',
        '-qm',
        'evil',
      ]);
      await assert.rejects(git(['-C', work, 'push', 'origin', 'HEAD:main']), (error: unknown) => {
        assert.ok(error instanceof GitError);
        assert.match(error.stderr, /403|not allowed|denied|read-only/i);
        return true;
      });
      assert.equal(await servedHead(main.root), head, 'the served branch did not move');
      const advertised = await fetch(`${url}/git/index/info/refs?service=git-receive-pack`);
      assert.equal(advertised.status, 403);
      const posted = await fetch(`${url}/git/index/git-receive-pack`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-git-receive-pack-request' },
        body: '0000',
      });
      assert.equal(posted.status, 403);
    });

    test('re-mirror after upstream publishes: one new commit on top, moon pulls and downloads it', async () => {
      const { url } = await mainServer();
      const known = [...(fixture.modules.get('moonbitlang/x')?.keys() ?? [])];
      const top = known
        .filter((v) => semver.valid(v))
        .sort(semver.compareBuild)
        .at(-1);
      assert.ok(top);
      const newVersion = semver.inc(top, 'minor');
      assert.ok(newVersion);
      const oldHead = await servedHead(main.root);
      const oldCount = await servedCommitCount(main.root);
      const published = await fixture.addVersion('moonbitlang/x', newVersion);
      const requestsBefore = upstream.archiveRequests;

      const result = await runCli(['mirror', 'moonbitlang/*'], { cwd: main.root });
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      const summary = parseTextSummary(result.stdout);
      assert.equal(summary.downloaded, 1, 'only the new archive');
      assert.equal(upstream.archiveRequests - requestsBefore, 1);

      assert.equal(await servedCommitCount(main.root), oldCount + 1, 'exactly one new commit');
      const newHead = await servedHead(main.root);
      const parent = (await git(['--git-dir', servedGitDir(main.root), 'rev-parse', `${newHead}^`])).trim();
      assert.equal(parent, oldHead, 'the old head is its parent');
      const changed = await git([
        '--git-dir',
        servedGitDir(main.root),
        'diff',
        '--name-only',
        oldHead,
        newHead,
      ]);
      assert.equal(changed.trim(), 'user/moonbitlang/x.index');

      const home = moonHome('main');
      const updated = await update(url, home);
      assert.equal(updated.action, 'pull', updated.pullError);
      const index = await readIndex(home);
      assert.equal(latest(index, 'moonbitlang/x'), newVersion);
      const entry = index.modules.get('moonbitlang/x')?.get(newVersion);
      assert.equal(entry?.checksum, published.checksum);
      const served = (await readFile(path.join(updated.indexDir, indexFilePath('moonbitlang/x')), 'utf8'))
        .split('\n')
        .filter(Boolean);
      assert.equal(served.at(-1), published.line, 'the new line, byte for byte, appended');
      const bytes = await download(url, 'moonbitlang/x', newVersion, published.checksum);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), published.checksum);
    });

    test('dependencies outside the owner are mirrored, so moon can resolve every version', async () => {
      const versions = [...(fixture.modules.get(WITH_DEPS)?.keys() ?? [])];
      assert.ok(versions.length >= 2, `fixture precondition: ${WITH_DEPS}`);
      const registry = { root: await freshRegistry() };
      const result = await runCli(['mirror', WITH_DEPS], { cwd: registry.root });
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      const serve = await startServe(registry.root);
      cleanups.push(serve.stop);
      try {
        const home = moonHome('deps');
        assert.equal((await update(serve.url, home)).action, 'clone');
        const index = await readIndex(home);
        assert.deepEqual([...(index.modules.get(WITH_DEPS)?.keys() ?? [])].sort(), versions.sort());
        const owners = new Set([...index.modules.keys()].map((m) => m.split('/')[0]));
        assert.ok(owners.size >= 3, `dependencies of other owners served: ${[...owners].join(', ')}`);
        const fetched = new Set<string>();
        for (const version of versions) {
          const picked = resolve(index, { [WITH_DEPS]: version });
          assert.ok(picked.size > 1, `${WITH_DEPS}@${version} has dependencies`);
          for (const [module, pick] of picked) {
            const key = `${module}@${pick}`;
            if (fetched.has(key)) continue;
            const checksum = index.modules.get(module)?.get(pick)?.checksum;
            assert.ok(checksum, `${key} listed with a checksum`);
            await download(serve.url, module, pick, checksum);
            fetched.add(key);
          }
        }
      } finally {
        await serve.stop();
      }
    });

    test('--strict mirrors only the match: its dependencies are not served', async () => {
      const registry = { root: await freshRegistry() };
      const result = await runCli(['mirror', '--strict', WITH_DEPS], { cwd: registry.root });
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      const index = await servedIndexOnDisk(registry.root, scratch.path);
      assert.deepEqual([...index.modules.keys()], [WITH_DEPS]);
      const version = latest(index, WITH_DEPS);
      assert.ok(version);
      assert.throws(() => resolve(index, { [WITH_DEPS]: version }), ResolveError);
    });

    test('serving while a mirror runs: every clone succeeds, every listed version downloads', async () => {
      const registry = { root: await freshRegistry() };
      await runCliOk(['config', 'mirror.concurrency', '4'], { cwd: registry.root });
      const serve = await startServe(registry.root);
      cleanups.push(serve.stop);
      const verified = new Set<string>();
      const heads = new Set<string>();
      let clones = 0;
      let mirrorsDone = false;
      upstream.latencyMs = 25;
      const mirrors = (async () => {
        try {
          const first = await runCli(['mirror', '-q', 'Yoorkin/*'], { cwd: registry.root });
          const second = await runCli(['mirror', '-q', 'oboard/*'], { cwd: registry.root });
          return [first, second];
        } finally {
          mirrorsDone = true;
        }
      })();
      const cloneAndCheck = async () => {
        const home = moonHome(`live-${clones++}`);
        const result = await update(serve.url, home);
        assert.equal(result.action, 'clone');
        heads.add((await git(['-C', result.indexDir, 'rev-parse', 'HEAD'])).trim());
        const fresh = listedVersions(await readWorkTree(result.indexDir)).filter(
          (item) => !verified.has(`${item.module}@${item.version}`),
        );
        // Right away: a version listed before its archive exists would fail here.
        await downloadAll(serve.url, fresh);
        for (const item of fresh) verified.add(`${item.module}@${item.version}`);
        const refs = await fetch(`${serve.url}/git/index/info/refs?service=git-upload-pack`);
        assert.equal(refs.status, 200);
        await refs.arrayBuffer();
      };
      try {
        while (!mirrorsDone) {
          await cloneAndCheck();
          await delay(100); // leave the CPU to the mirror now and then
        }
        const results = await mirrors;
        for (const result of results) assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
        await cloneAndCheck();
      } finally {
        upstream.latencyMs = 0;
        await mirrors.catch(() => undefined);
        await serve.stop();
      }
      assert.ok(clones >= 4, `only ${clones} clones during the mirrors`);
      assert.ok(heads.size >= 2, 'the served index moved while clients were cloning');
      const final = listedVersions(await servedIndexOnDisk(registry.root, scratch.path));
      assert.ok(final.length > 300);
      assert.equal(verified.size, final.length, 'every served version was downloaded and verified');
    });
  });

  describe('the command line: update, help, version', () => {
    test('update: runs moon update with MOONCAKES_REGISTRY from the config, --registry, --mooncakes', async () => {
      const dir = await tempDir('mr-update-');
      cleanups.push(dir.remove);
      const root = await freshRegistry();
      await runCliOk(['config', 'server.port', '18765'], { cwd: root });
      const bin = path.join(dir.path, 'bin');
      const emptyBin = path.join(dir.path, 'empty-bin');
      await mkdir(bin);
      await mkdir(emptyBin);
      const moon = path.join(bin, 'moon');
      await writeFile(
        moon,
        '#!/bin/sh\n' +
          '{ printf "MOONCAKES_REGISTRY=%s\\n" "${MOONCAKES_REGISTRY-<unset>}"; printf "ARGS=%s\\n" "$*"; } > "$FAKE_MOON_OUT"\n' +
          'exit "${FAKE_MOON_EXIT:-0}"\n',
      );
      await chmod(moon, 0o755);
      const out = path.join(dir.path, 'moon-out.txt');
      const env = {
        PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`,
        FAKE_MOON_OUT: out,
        MOONCAKES_REGISTRY: 'http://stale.invalid:1',
      };
      const ran = async (args: string[], extraEnv: Record<string, string> = {}) => {
        await writeFile(out, '');
        const result = await runCli(['update', ...args], { cwd: root, env: { ...env, ...extraEnv } });
        return { result, recorded: await readFile(out, 'utf8') };
      };

      const fromConfig = await ran([]);
      assert.equal(fromConfig.result.code, 0, fromConfig.result.stderr);
      assert.equal(fromConfig.recorded, 'MOONCAKES_REGISTRY=http://127.0.0.1:18765\nARGS=update\n');

      const overridden = await ran(['--registry', 'http://10.1.2.3:9999']);
      assert.equal(overridden.result.code, 0, overridden.result.stderr);
      assert.equal(overridden.recorded, 'MOONCAKES_REGISTRY=http://10.1.2.3:9999\nARGS=update\n');

      const official = await ran(['--mooncakes']);
      assert.equal(official.result.code, 0, official.result.stderr);
      assert.equal(official.recorded, 'MOONCAKES_REGISTRY=<unset>\nARGS=update\n');

      const failing = await ran([], { FAKE_MOON_EXIT: '3' });
      assert.notEqual(failing.result.code, 0, "moon's failure is the command's failure");

      const missing = await runCli(['update'], { cwd: root, env: { PATH: emptyBin } });
      assert.notEqual(missing.code, 0);
      const errors = errorLines(missing.stderr);
      assert.equal(errors.length, 1, missing.stderr);
      assert.match(errors[0] ?? '', /moon.*not installed/i);
      assertNoStack(missing);
    });

    test('--help on every command, --version, and a wrong flag', async () => {
      const commands = [
        ['init'],
        ['source'],
        ['source', 'add'],
        ['source', 'list'],
        ['source', 'default'],
        ['source', 'enable'],
        ['source', 'disable'],
        ['source', 'remove'],
        ['mirror'],
        ['serve'],
        ['config'],
        ['update'],
        ['index'],
        ['index', 'rebuild'],
        ['verify'],
        ['token'],
        ['token', 'add'],
        ['token', 'list'],
        ['token', 'remove'],
      ];
      const results = await Promise.all(
        commands.map(async (command) => ({
          command,
          result: await runCli([...command, '--help'], { cwd: main.root }),
        })),
      );
      for (const { command, result } of results) {
        assert.equal(result.code, 0, `${command.join(' ')} --help: ${result.stderr}`);
        assert.match(result.stdout, new RegExp(`^Usage: moonbit-registry ${command.join(' ')}\\b`, 'm'));
      }
      const top = await runCli(['--help']);
      assert.equal(top.code, 0);
      for (const name of [
        'init',
        'source',
        'mirror',
        'serve',
        'config',
        'update',
        'index',
        'verify',
        'token',
      ]) {
        assert.match(top.stdout, new RegExp(`^\\s+${name}\\b`, 'm'), `--help lists ${name}`);
      }

      const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as {
        version: string;
      };
      const version = await runCli(['--version']);
      assert.equal(version.code, 0);
      assert.equal(version.stdout.trim(), pkg.version);

      for (const args of [['mirror', '--bogus', 'x/*'], ['serve', '--nope'], ['--wat']]) {
        const wrong = await runCli(args, { cwd: main.root });
        assert.notEqual(wrong.code, 0, `${args.join(' ')} should fail`);
        const errors = errorLines(wrong.stderr);
        assert.equal(errors.length, 1, wrong.stderr);
        assert.match(errors[0] ?? '', new RegExp(String(args.find((a) => a.startsWith('--')))));
        assertNoStack(wrong);
      }
    });
  });
});

/** The fixture's versions of one module as a RegistryIndex (for latest()). */
function fixtureIndexOf(module: string): RegistryIndex {
  const index = EMPTY_INDEX();
  const versions = fixture.modules.get(module);
  if (versions) {
    index.modules.set(
      module,
      new Map(
        [...versions].map(([version, info]) => [
          version,
          { module, version, checksum: info.checksum, deps: {}, fields: {} },
        ]),
      ),
    );
  }
  return index;
}
