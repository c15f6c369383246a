/**
 * Prebuilt wasm tools (PROTOCOL.md 5, issue 15), end to end: the real CLI against a fake
 * upstream that serves module zips with executable packages and their wasm. `mirror` finds the
 * packages in the archives and stores their assets (verified against the `.sha256`), a mirror
 * server serves them with the upstream stopped, a proxy fetches them once and then serves them
 * offline, a wrong `.sha256` is refused and nothing stored, a 404 is remembered, hostile paths
 * get nowhere, and `verify` finds a corrupted asset.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  copyRegistry,
  isRecord,
  pristineRegistry,
  type RunningServer,
  runCli,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture } from '../support/fixture.js';
import { installTool } from '../support/moon-client.js';
import { raw } from '../support/test-registry.js';
import { addToolModules, assetPath, type ToolModule, wasmBytes } from '../support/tool-modules.js';

const CLI = 'asset-e2e/cli-tools';
const SRC = 'asset-e2e/srctool';
const BAD = 'asset-e2e/badsum';
const PLAIN = 'asset-e2e/plainlib';

/** Packages of cli-tools: a library root, two tools built upstream, one tool never built. */
const FMT = ['cmd', 'fmt'];
const LINT = ['cmd', 'lint'];
const NOBUILD = ['cmd', 'nobuild'];

const TOOLS: ToolModule[] = [
  {
    module: CLI,
    version: '1.0.0',
    files: {
      'moon.pkg.json': '{}',
      'lib.mbt': 'pub fn f() -> Int { 1 }\n',
      'cmd/fmt/moon.pkg.json': JSON.stringify({ 'is-main': true, import: [CLI] }),
      'cmd/fmt/main.mbt': 'fn main { }\n',
      // The newer DSL, with a commented-out decoy elsewhere.
      'cmd/lint/moon.pkg': 'import {\n  "asset-e2e/cli-tools",\n}\n\noptions(\n  "is-main": true,\n)\n',
      'cmd/nobuild/moon.pkg.json': JSON.stringify({ 'is-main': true }),
      'cmd/notmain/moon.pkg': '// options("is-main": true)\noptions(\n  "is-main": false,\n)\n',
    },
    built: [FMT, LINT],
  },
  {
    // moon.mod.json `source`: package paths are relative to src/, src/ itself is the root package.
    module: SRC,
    version: '0.2.0',
    source: 'src',
    files: {
      'src/moon.pkg.json': JSON.stringify({ 'is-main': true }),
      'src/gen/moon.pkg.json': JSON.stringify({ 'is-main': true }),
      'README.md': 'srctool\n',
    },
    built: [[], ['gen']],
  },
  {
    // Its root's wasm fails verification, so the version stays unsettled; its never-built
    // package's 404 must still be remembered.
    module: BAD,
    version: '1.0.0',
    files: {
      'moon.pkg.json': JSON.stringify({ 'is-main': true }),
      'unbuilt/moon.pkg.json': JSON.stringify({ 'is-main': true }),
    },
    built: [[]],
  },
  { module: PLAIN, version: '0.1.0', files: { 'moon.pkg.json': '{}' }, built: [] },
];

let fixture: Fixture;
let upstream: FakeUpstream;
let scratch: { path: string; remove(): Promise<void> };
let pristine: string;
const servers = new Set<RunningServer>();
let counter = 0;

before(async () => {
  fixture = await buildFixture({ filter: (module) => module === 'moonbitlang/regexp' });
  upstream = await FakeUpstream.start({ fixture });
  await addToolModules(fixture, upstream, TOOLS);
  // The upstream's .sha256 for badsum names other bytes than its wasm.
  upstream.assetSha256.set(assetPath(BAD, '1.0.0', []), `${'0'.repeat(64)}  badsum.wasm\n`);
  scratch = await tempDir('mr-assets-');
  pristine = await pristineRegistry('up', upstream.url, path.join(scratch.path, 'pristine'));
});

after(async () => {
  for (const server of servers) await server.stop();
  await upstream?.stop();
  await fixture?.cleanup();
  await scratch?.remove();
});

async function freshRegistry(settings: Record<string, string> = {}): Promise<string> {
  return copyRegistry(pristine, path.join(scratch.path, `r${++counter}`), settings);
}

async function serve(root: string, args: string[] = []): Promise<RunningServer> {
  const server = await startServe(root, args);
  servers.add(server);
  return server;
}

async function stop(server: RunningServer): Promise<void> {
  await server.stop();
  servers.delete(server);
}

function storedWasm(root: string, module: string, version: string, packagePath: string[]): string {
  const last = packagePath.at(-1) ?? (module.split('/').at(-1) as string);
  return path.join(root, 'data', 'assets', ...module.split('/'), version, ...packagePath, `${last}.wasm`);
}

function hits(wasmPath: string): { wasm: number; sha256: number } {
  return {
    wasm: upstream.assetHits.get(wasmPath) ?? 0,
    sha256: upstream.assetHits.get(`${wasmPath}.sha256`) ?? 0,
  };
}

interface AssetJson {
  packages: number;
  stored: number;
  absent: number;
  failed: number;
  failures: Array<{ package: string; error: string }>;
}

async function mirrorJson(root: string, args: string[] = []): Promise<Record<string, unknown>> {
  const result = await runCliOk(['mirror', 'asset-e2e/*', '--json', ...args], { cwd: root });
  const summary: unknown = JSON.parse(result.stdout);
  assert.ok(isRecord(summary));
  return summary;
}

describe('mirror mode', () => {
  let root: string;

  before(async () => {
    root = await freshRegistry();
  });

  test('mirror stores the executables found in the archives; a wrong .sha256 is refused and nothing stored', async () => {
    upstream.clearRecords();
    const summary = await mirrorJson(root);
    const assets = summary.assets as AssetJson;
    // fmt, lint, nobuild; srctool's root and gen; badsum's root and unbuilt. Not notmain, not
    // the libraries.
    assert.equal(assets.packages, 7, JSON.stringify(assets));
    assert.equal(assets.stored, 4);
    assert.equal(assets.absent, 2);
    assert.equal(assets.failed, 1);
    assert.match(assets.failures[0]?.package ?? '', /^asset-e2e\/badsum@1\.0\.0$/);
    assert.match(assets.failures[0]?.error ?? '', /checksum|match/i);
    for (const [module, version, pkg] of [
      [CLI, '1.0.0', FMT],
      [CLI, '1.0.0', LINT],
      [SRC, '0.2.0', []],
      [SRC, '0.2.0', ['gen']],
    ] as const) {
      const stored = await fs.readFile(storedWasm(root, module, version, [...pkg]));
      assert.deepEqual(stored, wasmBytes(module, version, [...pkg]));
      const sha = await fs.readFile(`${storedWasm(root, module, version, [...pkg])}.sha256`, 'utf8');
      assert.match(sha, /^[0-9a-f]{64} {2}\S+\.wasm\n$/);
    }
    assert.equal(existsSync(storedWasm(root, BAD, '1.0.0', [])), false, 'bad bytes are not stored');
    assert.equal(existsSync(`${storedWasm(root, BAD, '1.0.0', [])}.sha256`), false);
    assert.equal(existsSync(storedWasm(root, CLI, '1.0.0', ['cmd', 'notmain'])), false);
    // A version without executables gets no folder, only a line in one file.
    assert.equal(existsSync(path.join(root, 'data', 'assets', ...PLAIN.split('/'))), false);
    const plain = JSON.parse(
      await fs.readFile(path.join(root, 'data', 'assets', '.no-executables.json'), 'utf8'),
    ) as Record<string, string>;
    assert.deepEqual(Object.keys(plain), [`${PLAIN}@0.1.0`]);
    // Nothing left behind in data/tmp.
    const tmp = await fs.readdir(path.join(root, 'data', 'tmp')).catch(() => []);
    assert.deepEqual(tmp, []);
  });

  test('the tools install with the upstream stopped; no asset and a refused one are 404', async () => {
    const server = await serve(root);
    await upstream.close();
    try {
      assert.deepEqual(await installTool(server.url, CLI, '1.0.0', FMT), wasmBytes(CLI, '1.0.0', FMT));
      assert.deepEqual(await installTool(server.url, CLI, '1.0.0', LINT), wasmBytes(CLI, '1.0.0', LINT));
      // The root-package form: <module>@<version>/<last segment of module>.wasm
      assert.deepEqual(await installTool(server.url, SRC, '0.2.0', []), wasmBytes(SRC, '0.2.0', []));
      assert.deepEqual(
        await installTool(server.url, SRC, '0.2.0', ['gen']),
        wasmBytes(SRC, '0.2.0', ['gen']),
      );
      await assert.rejects(installTool(server.url, CLI, '1.0.0', NOBUILD), /HTTP 404/);
      await assert.rejects(installTool(server.url, BAD, '1.0.0', []), /HTTP 404/);
      const head = await fetch(`${server.url}/assets/${assetPath(CLI, '1.0.0', FMT)}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-type'), 'application/wasm');
    } finally {
      await upstream.restart();
      await stop(server);
    }
  });

  test('the next mirror asks again only for what failed: a 404 is remembered', async () => {
    upstream.clearRecords();
    const summary = await mirrorJson(root);
    const assets = summary.assets as AssetJson;
    assert.equal(assets.stored, 0);
    assert.equal(assets.failed, 1, 'badsum is tried again');
    assert.deepEqual(hits(assetPath(CLI, '1.0.0', NOBUILD)), { wasm: 0, sha256: 0 });
    assert.deepEqual(hits(assetPath(CLI, '1.0.0', FMT)), { wasm: 0, sha256: 0 });
    assert.equal(hits(assetPath(BAD, '1.0.0', [])).sha256, 1);
    assert.deepEqual(hits(assetPath(BAD, '1.0.0', ['unbuilt'])), { wasm: 0, sha256: 0 });
    assert.equal(assets.absent, 1, 'the remembered 404 of the unsettled version');
  });

  test('hostile asset paths are 404 and never reach outside data/assets', async () => {
    // Files a path escaping data/assets could reach.
    const server = await serve(root);
    try {
      const prefix = `/assets/${CLI}@1.0.0`;
      for (const target of [
        `${prefix}/../../../../registry.toml`,
        `${prefix}/..%2F..%2F..%2F..%2Fregistry.toml`,
        `${prefix}/cmd/%2e%2e/cmd/fmt/fmt.wasm`,
        `${prefix}/cmd/%2E%2E%2F%2E%2E/fmt.wasm`,
        `${prefix}/cmd//fmt/fmt.wasm`,
        `${prefix}/cmd%5Cfmt/fmt.wasm`,
        `${prefix}/cmd/fmt%00/fmt.wasm`,
        `${prefix}/cmd/fmt/other.wasm`,
        `${prefix}/cmd/fmt/fmt.wasm.sha256.x`,
        `${prefix}/.assets.json`,
        `${prefix}/cmd/fmt/`,
        `/assets/${CLI}@9.9.9/cmd/fmt/fmt.wasm`,
        `/assets/${CLI}@1.0.0%2F..%2F..%2F1.0.0/cmd/fmt/fmt.wasm`,
        `/assets/..%2F..%2Fregistry.toml@1.0.0/x.wasm`,
        `/assets/${CLI}/1.0.0/cmd/fmt/fmt.wasm`,
        '/assets/',
        '/assets/%ZZ',
      ]) {
        const res = await raw(server.url, target);
        assert.ok(res.status === 404 || res.status === 400, `${target}: ${res.status}`);
        assert.doesNotMatch(res.body.toString('utf8'), /\[registry\]|\0asm|"complete"/, target);
      }
      // The same tool by its proper path still works.
      assert.equal((await raw(server.url, `${prefix}/cmd/fmt/fmt.wasm`)).status, 200);
      assert.equal((await raw(server.url, `${prefix}/cmd/fmt/fmt.wasm`, { method: 'POST' })).status, 405);
    } finally {
      await stop(server);
    }
  });

  test('verify finds a corrupted asset and --repair fetches it again', async () => {
    const file = storedWasm(root, CLI, '1.0.0', LINT);
    const bytes = await fs.readFile(file);
    bytes.writeUInt8((bytes.at(-1) ?? 0) ^ 0xff, bytes.length - 1);
    await fs.writeFile(file, bytes);
    await fs.rm(`${storedWasm(root, SRC, '0.2.0', ['gen'])}.sha256`);

    const found = await runCli(['verify', '--json'], { cwd: root });
    assert.equal(found.code, 1, found.stderr);
    const report = JSON.parse(found.stdout) as {
      problems: Array<{ kind: string; path: string; detail: string }>;
    };
    const assets = report.problems.filter((p) => p.kind === 'corrupt-asset');
    assert.deepEqual(
      assets.map((p) => p.path),
      [
        'data/assets/asset-e2e/cli-tools/1.0.0/cmd/lint/lint.wasm',
        'data/assets/asset-e2e/srctool/0.2.0/gen/gen.wasm',
      ],
    );
    assert.match(assets[0]?.detail ?? '', /hashes to/);
    assert.match(assets[1]?.detail ?? '', /without its \.sha256/);
    const text = await runCli(['verify'], { cwd: root });
    assert.match(
      text.stdout,
      /corrupt-asset +data\/assets\/asset-e2e\/cli-tools\/1\.0\.0\/cmd\/lint\/lint\.wasm/,
    );

    const repaired = await runCli(['verify', '--repair', '--json'], { cwd: root });
    assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
    assert.deepEqual(await fs.readFile(file), wasmBytes(CLI, '1.0.0', LINT));
    await runCliOk(['verify'], { cwd: root });
  });
});

describe('mirror --no-assets', () => {
  test('stores no asset and asks the upstream for none', async () => {
    const root = await freshRegistry();
    upstream.clearRecords();
    const summary = await mirrorJson(root, ['--no-assets']);
    assert.equal(summary.assets, undefined);
    assert.equal(upstream.assetHits.size, 0);
    assert.equal(existsSync(path.join(root, 'data', 'assets', 'asset-e2e')), false);
  });
});

describe('proxy mode', () => {
  test('fetched once, verified, shared, 404 remembered; then served with the upstream stopped', async () => {
    const root = await freshRegistry();
    const server = await serve(root, ['--proxy']);
    upstream.clearRecords();
    try {
      // Three clients at once: one upstream fetch.
      const results = await Promise.all([1, 2, 3].map(() => installTool(server.url, SRC, '0.2.0', ['gen'])));
      for (const wasm of results) assert.deepEqual(wasm, wasmBytes(SRC, '0.2.0', ['gen']));
      assert.deepEqual(hits(assetPath(SRC, '0.2.0', ['gen'])), { wasm: 1, sha256: 1 });
      assert.deepEqual(await installTool(server.url, CLI, '1.0.0', FMT), wasmBytes(CLI, '1.0.0', FMT));
      assert.ok(existsSync(storedWasm(root, CLI, '1.0.0', FMT)));

      // No asset upstream: 404, and asked once however often the client asks.
      for (let i = 0; i < 3; i++)
        await assert.rejects(installTool(server.url, CLI, '1.0.0', NOBUILD), /HTTP 404/);
      assert.equal(hits(assetPath(CLI, '1.0.0', NOBUILD)).sha256, 1);

      // A wasm that does not match its .sha256: refused (502), nothing stored.
      const bad = await fetch(`${server.url}/assets/${assetPath(BAD, '1.0.0', [])}`);
      assert.equal(bad.status, 502);
      assert.match(await bad.text(), /does not match its \.sha256/);
      assert.equal(existsSync(storedWasm(root, BAD, '1.0.0', [])), false);
      assert.equal(existsSync(`${storedWasm(root, BAD, '1.0.0', [])}.sha256`), false);

      // A version the index does not list is 404 without asking the upstream.
      const unlisted = await fetch(`${server.url}/assets/${assetPath(CLI, '9.9.9', FMT)}`);
      assert.equal(unlisted.status, 404);
      assert.equal(hits(assetPath(CLI, '9.9.9', FMT)).sha256, 0);

      await upstream.close();
      assert.deepEqual(await installTool(server.url, CLI, '1.0.0', FMT), wasmBytes(CLI, '1.0.0', FMT));
      assert.deepEqual(
        await installTool(server.url, SRC, '0.2.0', ['gen']),
        wasmBytes(SRC, '0.2.0', ['gen']),
      );
    } finally {
      await upstream.restart();
      await stop(server);
    }
  });
});
