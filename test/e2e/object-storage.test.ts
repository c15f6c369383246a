/**
 * `[storage] type = "s3"` on one registry, end to end with the real CLI and s3rver: mirror stores
 * archives in the bucket (none on disk), serve streams them (or redirects to a presigned URL),
 * and verify, verify --repair, gc, export/import, status and /metrics work on the bucket as
 * they do on data/packages.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { initRegistryWithSource, runCli, runCliOk, startServe, tempDir } from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, checksumIn, type Fixture, makeArchive, sha256Hex } from '../support/fixture.js';
import { download, install, latest, readIndex, resolve, update } from '../support/moon-client.js';
import { type RunningS3Server, S3_TEST_ENV, startS3Server, storageToml } from '../support/s3-server.js';
import { addToolModules, type ToolModule, wasmBytes } from '../support/tool-modules.js';

const SOURCE = 'fakecakes';
const X = 'moonbitlang/x';
const ENV = S3_TEST_ENV;

let fixture: Fixture;
let upstream: FakeUpstream;
let s3: RunningS3Server;
let scratch: { path: string; remove: () => Promise<void> };
let registry: { root: string; remove: () => Promise<void> };
let xVersion: string;

/** The storage table of this test's bucket, `extra` lines appended to it. */
function storageTomlFor(prefix: string, extra: string[] = []): string {
  return storageToml(s3, { prefix, extra });
}

async function objectKeys(prefix: string): Promise<string[]> {
  const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (listed.Contents ?? []).map((o) => o.Key as string).sort();
}

async function zipFilesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((name) => name.endsWith('.zip'));
}

function keyOf(module: string, version: string, prefix = 'team/'): string {
  return `${prefix}packages/${module}/${version}/${checksumIn(fixture, module, version)}.zip`;
}

/** A module with one executable package the upstream has a prebuilt wasm for. */
const TOOL: ToolModule = {
  module: 'bucket-e2e/tool',
  version: '1.0.0',
  files: {
    'moon.pkg.json': '{}',
    'cmd/fmt/moon.pkg.json': JSON.stringify({ 'is-main': true }),
    'cmd/fmt/main.mbt': 'fn main { }\n',
  },
  built: [['cmd', 'fmt']],
};
const SYMBOLS = makeArchive('symbols/all', '1.0.0', 'editor symbols');

before(async () => {
  fixture = await buildFixture();
  upstream = await FakeUpstream.start({ fixture, symbols: SYMBOLS });
  await addToolModules(fixture, upstream, [TOOL]);
  s3 = await startS3Server();
  scratch = await tempDir('mr-s3-');
  registry = await initRegistryWithSource(SOURCE, upstream.url);
  await appendFile(path.join(registry.root, 'registry.toml'), storageTomlFor('team/'));
  xVersion = [...(fixture.modules.get(X)?.keys() ?? [])].at(-1) as string;
});

after(async () => {
  await Promise.allSettled([
    upstream?.close(),
    s3?.stop(),
    registry?.remove(),
    scratch?.remove(),
    fixture?.cleanup(),
  ]);
});

describe('a registry whose archives live in an S3 bucket', () => {
  test('mirror stores archives in the bucket under the prefix, none on disk; serve streams them to moon', async () => {
    await runCliOk(['mirror', X], { cwd: registry.root, env: ENV });
    const keys = await objectKeys('team/packages/');
    assert.ok(keys.includes(keyOf(X, xVersion)), `the bucket holds ${X}@${xVersion}: ${keys.join(', ')}`);
    assert.deepEqual(await zipFilesUnder(path.join(registry.root, 'data')), [], 'no archive on disk');

    const server = await startServe(registry.root, [], { env: ENV });
    try {
      const home = path.join(scratch.path, 'home');
      await update(server.url, home);
      const index = await readIndex(home);
      const deps = { [X]: latest(index, X) as string };
      const installed = await install(server.url, home, deps); // checksums checked by the client
      assert.deepEqual([...installed.keys()].sort(), [...resolve(index, deps).keys()].sort());
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const stored = /^moonbit_registry_archives_stored (\d+)$/m.exec(metrics)?.[1];
      assert.equal(Number(stored), keys.length, 'the archive count of /metrics is the bucket');
    } finally {
      await server.stop();
    }
    const status = JSON.parse(
      (await runCliOk(['status', '--json'], { cwd: registry.root, env: ENV })).stdout,
    ) as {
      archives: { count: number; store: string };
    };
    assert.equal(status.archives.count, keys.length);
    assert.equal(status.archives.store, `s3://${s3.bucket}/team/`);
    const text = (await runCliOk(['status'], { cwd: registry.root, env: ENV })).stdout;
    assert.match(text, new RegExp(`^Archives: ${keys.length} stored, .* in s3://${s3.bucket}/team/$`, 'm'));
  });

  test('prebuilt wasm and symbols live in the bucket too, are served from it, and verify --repair mends them there', async () => {
    await runCliOk(['mirror', TOOL.module], { cwd: registry.root, env: ENV });
    const wasmKey = `team/assets/${TOOL.module}/${TOOL.version}/cmd/fmt/fmt.wasm`;
    const keys = await objectKeys('team/');
    for (const key of [
      wasmKey,
      `${wasmKey}.sha256`,
      `team/symbols/${SOURCE}/symbols.zip`,
      `team/symbols/${SOURCE}/symbols.json`,
    ]) {
      assert.ok(keys.includes(key), `${key} is in the bucket: ${keys.join(', ')}`);
    }
    for (const folder of ['assets', 'symbols']) {
      const local = await readdir(path.join(registry.root, 'data', folder), { recursive: true }).catch(
        () => [],
      );
      assert.deepEqual(local, [], `nothing in data/${folder}`);
    }
    const wasmUrl = (server: string) => `${server}/assets/${TOOL.module}@${TOOL.version}/cmd/fmt/fmt.wasm`;
    const serveAndCheck = async () => {
      const server = await startServe(registry.root, [], { env: ENV });
      try {
        const wasm = await fetch(wasmUrl(server.url));
        assert.equal(wasm.status, 200);
        assert.deepEqual(
          Buffer.from(await wasm.arrayBuffer()),
          wasmBytes(TOOL.module, TOOL.version, ['cmd', 'fmt']),
        );
        const symbols = await fetch(`${server.url}/symbols.zip`);
        assert.equal(symbols.status, 200);
        assert.deepEqual(Buffer.from(await symbols.arrayBuffer()), SYMBOLS);
      } finally {
        await server.stop();
      }
    };
    await serveAndCheck();
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: wasmKey, Body: Buffer.from('not wasm') }),
    );
    await s3.client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: `team/symbols/${SOURCE}/symbols.zip`,
        Body: Buffer.from('nope'),
      }),
    );
    const found = await runCli(['verify', '--json'], { cwd: registry.root, env: ENV });
    assert.notEqual(found.code, 0);
    const kinds = (JSON.parse(found.stdout) as { problems: Array<{ kind: string; path?: string }> }).problems
      .map((p) => `${p.kind} ${p.path}`)
      .sort();
    assert.deepEqual(kinds, [
      `corrupt-asset s3://${s3.bucket}/${wasmKey}`,
      `corrupt-symbols s3://${s3.bucket}/team/symbols/${SOURCE}/symbols.zip`,
    ]);
    await runCliOk(['verify', '--repair'], { cwd: registry.root, env: ENV });
    await runCliOk(['mirror', TOOL.module], { cwd: registry.root, env: ENV }); // fetches the deleted symbols again
    await serveAndCheck();
  });

  test('verify hashes the bucket; --repair replaces a damaged object and deletes a stray one', async () => {
    assert.equal(
      (
        JSON.parse((await runCliOk(['verify', '--json'], { cwd: registry.root, env: ENV })).stdout) as {
          ok: boolean;
        }
      ).ok,
      true,
    );
    const damaged = keyOf(X, xVersion);
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: damaged, Body: Buffer.from('not a zip') }),
    );
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: 'team/packages/notes.txt', Body: 'x' }),
    );
    const found = await runCli(['verify', '--json'], { cwd: registry.root, env: ENV });
    assert.notEqual(found.code, 0);
    const report = JSON.parse(found.stdout) as { problems: Array<{ kind: string; path?: string }> };
    const kinds = report.problems.map((p) => `${p.kind} ${p.path}`).sort();
    assert.deepEqual(kinds, [
      `corrupt-archive s3://${s3.bucket}/${damaged}`,
      `stray-file s3://${s3.bucket}/team/packages/notes.txt`,
    ]);
    await runCliOk(['verify', '--repair'], { cwd: registry.root, env: ENV });
    const keys = await objectKeys('team/packages/');
    assert.ok(!keys.includes('team/packages/notes.txt'), 'the stray object is gone');
    const server = await startServe(registry.root, [], { env: ENV });
    try {
      await download(server.url, X, xVersion, checksumIn(fixture, X, xVersion)); // whole again
    } finally {
      await server.stop();
    }
  });

  test('gc removes an unreferenced archive from the bucket and nothing else', async () => {
    const zip = makeArchive(X, '99.0.0', 'unreferenced');
    const orphan = `team/packages/${X}/99.0.0/${sha256Hex(zip)}.zip`;
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: orphan, Body: zip }));
    const orphanAssets = `team/assets/${X}/99.0.0`;
    for (const name of ['x.wasm', 'x.wasm.sha256']) {
      await s3.client.send(
        new PutObjectCommand({ Bucket: s3.bucket, Key: `${orphanAssets}/${name}`, Body: name }),
      );
    }
    const before = await objectKeys('team/');
    const report = JSON.parse(
      (await runCliOk(['gc', '--json'], { cwd: registry.root, env: ENV })).stdout,
    ) as {
      removed: Array<{ path: string }>;
    };
    assert.deepEqual(report.removed.map((r) => r.path).sort(), [
      `s3://${s3.bucket}/${orphanAssets}`,
      `s3://${s3.bucket}/${orphan}`,
    ]);
    assert.deepEqual(
      await objectKeys('team/'),
      before.filter((k) => k !== orphan && !k.startsWith(`${orphanAssets}/`)),
    );
  });

  test('export from the bucket, import into a registry on disk: the same archives, served offline', async () => {
    const bundle = path.join(scratch.path, 'x.mbr');
    await runCliOk(['export', bundle], { cwd: registry.root, env: ENV });
    const target = await initRegistryWithSource('other', upstream.url);
    try {
      await runCliOk(['import', bundle], { cwd: target.root });
      const server = await startServe(target.root);
      try {
        const bytes = await download(server.url, X, xVersion, checksumIn(fixture, X, xVersion));
        assert.equal(createHash('sha256').update(bytes).digest('hex'), checksumIn(fixture, X, xVersion));
        // The tool's prebuilt wasm came along from the bucket.
        const wasm = await fetch(`${server.url}/assets/${TOOL.module}@${TOOL.version}/cmd/fmt/fmt.wasm`);
        assert.deepEqual(
          Buffer.from(await wasm.arrayBuffer()),
          wasmBytes(TOOL.module, TOOL.version, ['cmd', 'fmt']),
        );
      } finally {
        await server.stop();
      }
    } finally {
      await target.remove();
    }
  });

  test('redirect = true: an archive GET answers 302 to a presigned URL of the bucket', async () => {
    const copy = await initRegistryWithSource(SOURCE, upstream.url);
    try {
      await appendFile(
        path.join(copy.root, 'registry.toml'),
        storageTomlFor('redirect/', ['redirect = true']),
      );
      await runCliOk(['mirror', X], { cwd: copy.root, env: ENV });
      const server = await startServe(copy.root, [], { env: ENV });
      try {
        const url = `${server.url}/user/${X}/${xVersion}.zip`;
        const res = await fetch(url, { redirect: 'manual' });
        assert.equal(res.status, 302);
        const location = res.headers.get('location') ?? '';
        assert.ok(location.startsWith(`${s3.endpoint}/${s3.bucket}/redirect/packages/`), location);
        assert.match(location, /X-Amz-Signature=/);
        // Clients follow it and get the archive from the bucket.
        await download(server.url, X, xVersion, checksumIn(fixture, X, xVersion));
      } finally {
        await server.stop();
      }
    } finally {
      await copy.remove();
    }
  });

  test('a broken [storage] table is refused with its line', async () => {
    const bad = await initRegistryWithSource(SOURCE, upstream.url);
    try {
      await appendFile(path.join(bad.root, 'registry.toml'), '\n[storage]\ntype = "s3"\n');
      const result = await runCli(['status'], { cwd: bad.root });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /registry\.toml line \d+: storage(\.bucket)?: type = "s3" needs a bucket/);
    } finally {
      await bad.remove();
    }
  });
});
