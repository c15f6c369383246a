import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture, sha256Hex } from '../support/fixture.js';
import { git } from '../support/git.js';
import {
  archiveUrl,
  download,
  install,
  latest,
  type RegistryIndex,
  readIndex,
  resolve,
  update,
} from '../support/moon-client.js';

let fixture: Fixture;
let upstream: FakeUpstream;
const tempDirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'support-test-'));
  tempDirs.push(dir);
  return dir;
}

before(async () => {
  fixture = await buildFixture();
  upstream = await FakeUpstream.start({ fixture });
});

after(async () => {
  await upstream?.stop();
  await fixture?.cleanup();
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

function checksumOf(module: string, version: string): string {
  const info = fixture.modules.get(module)?.get(version);
  assert.ok(info, `${module}@${version} is in the fixture`);
  return info.checksum;
}

test('fixture rewrites only the checksum of each real index line', async () => {
  assert.equal(fixture.modules.size, 887);
  const total = [...fixture.modules.values()].reduce((sum, versions) => sum + versions.size, 0);
  assert.equal(total, 6548);
  for (const file of [
    'user/moonbitlang/core.index',
    'user/illusory0x0/🐫.index',
    'user/tonyfettes/js/test.index',
  ]) {
    const before = await git(['--git-dir', fixture.gitDir, 'show', `main~1:${file}`]);
    const after = await git(['--git-dir', fixture.gitDir, 'show', `main:${file}`]);
    const strip = (text: string) => text.replace(/"checksum": "[0-9a-f]{64}"/g, '"checksum": ""');
    assert.equal(strip(after), strip(before), file);
    assert.notEqual(after, before);
  }
  const archive = fixture.archiveFor('moonbitlang/core', '0.1.20260213+3382e0600');
  assert.ok(archive);
  assert.equal(sha256Hex(archive), checksumOf('moonbitlang/core', '0.1.20260213+3382e0600'));
});

test('moon update clones over smart HTTP with protocol v0 and v2', async () => {
  for (const protocolVersion of [0, 2] as const) {
    const moonHome = await tempDir();
    upstream.clearRecords();
    const result = await update(upstream.url, moonHome, { protocolVersion });
    assert.equal(result.action, 'clone');
    const sentV2 = upstream.requests.some((r) => r.headers['git-protocol'] === 'version=2');
    assert.equal(sentV2, protocolVersion === 2);
    const shallow = await git(['-C', result.indexDir, 'rev-parse', '--is-shallow-repository']);
    assert.equal(shallow.trim(), 'true');
    const index = await readIndex(moonHome);
    assert.equal(index.modules.size, 887);
    assert.equal(index.skippedLines, 0);
    const core = index.modules.get('moonbitlang/core')?.get('0.1.20260213+3382e0600');
    assert.equal(core?.checksum, checksumOf('moonbitlang/core', '0.1.20260213+3382e0600'));
  }
  assert.equal(upstream.archiveRequests, 0);
});

test('moon update pulls a version published upstream', async () => {
  const own = await buildFixture();
  const server = await FakeUpstream.start({ fixture: own });
  try {
    const moonHome = await tempDir();
    assert.equal((await update(server.url, moonHome)).action, 'clone');
    const added = await own.addVersion('moonbitlang/x', '0.4.41', { 'moonbitlang/core': '0.1.0' });
    const result = await update(server.url, moonHome);
    assert.equal(result.action, 'pull', result.pullError);
    const index = await readIndex(moonHome);
    assert.equal(index.modules.get('moonbitlang/x')?.get('0.4.41')?.checksum, added.checksum);
    assert.equal(latest(index, 'moonbitlang/x'), '0.4.41');
    await download(server.url, 'moonbitlang/x', '0.4.41', added.checksum);
  } finally {
    await server.stop();
    await own.cleanup();
  }
});

test('extraModules, filter and flavor shape a smaller upstream', async () => {
  const small = await buildFixture({
    flavor: 'partner',
    filter: (module) => module.startsWith('moonbitlang/'),
    extraModules: [
      { module: 'company/app', version: '1.0.0', deps: { 'moonbitlang/x': '0.4.32' } },
      { module: 'partner-org/tool', version: '0.1.0', fields: { description: 'outil privé' } },
    ],
  });
  const server = await FakeUpstream.start({ fixture: small });
  try {
    const moonHome = await tempDir();
    await update(server.url, moonHome);
    const index = await readIndex(moonHome);
    const owners = new Set([...index.modules.keys()].map((module) => module.split('/')[0]));
    assert.deepEqual([...owners].sort(), ['company', 'moonbitlang', 'partner-org']);
    assert.equal(index.modules.get('partner-org/tool')?.get('0.1.0')?.fields.description, 'outil privé');
    const installed = await install(server.url, moonHome, { 'company/app': '1.0.0' });
    assert.equal(installed.get('moonbitlang/x')?.version, '0.4.32');
    // Another flavor: same module@version, different bytes.
    assert.notEqual(
      small.modules.get('moonbitlang/x')?.get('0.4.32')?.checksum,
      checksumOf('moonbitlang/x', '0.4.32'),
    );
  } finally {
    await server.stop();
    await small.cleanup();
  }
});

test('the index refuses pushes', async () => {
  const res = await fetch(`${upstream.indexUrl}/info/refs?service=git-receive-pack`);
  assert.equal(res.status, 403);
  await res.body?.cancel();
});

test('downloads verify checksums for + versions, nested and unicode modules', async () => {
  const moonHome = await tempDir();
  await update(upstream.url, moonHome);
  const index = await readIndex(moonHome);
  const coreLatest = latest(index, 'moonbitlang/core');
  assert.equal(coreLatest, '0.1.20260213+3382e0600');
  assert.match(
    archiveUrl(upstream.url, 'moonbitlang/core', coreLatest),
    /core%2F0\.1\.20260213%2B3382e0600\.zip$/,
  );
  upstream.clearRecords();
  for (const [module, version] of [
    ['moonbitlang/core', coreLatest],
    ['tonyfettes/js/test', '0.1.0'],
    ['illusory0x0/🐫', '0.1.0'],
  ] as const) {
    const checksum = checksumOf(module, version);
    const bytes = await download(upstream.url, module, version, checksum);
    assert.equal(sha256Hex(bytes), checksum);
    await download(upstream.url, module, version, checksum, { literalSlashes: true });
  }
  assert.equal(upstream.archiveRequests, 6);
  assert.ok(upstream.requests.every((r) => r.headers['user-agent'] === 'mooncake/0.1.0'));
});

test('resolve applies minimal version selection to the real index', async () => {
  const moonHome = await tempDir();
  await update(upstream.url, moonHome);
  const index = await readIndex(moonHome);
  // Kaida-Amethyst/path@0.1.0 needs moonbitlang/x >= 0.4.32; the root asks for less.
  const picked = resolve(index, { 'Kaida-Amethyst/path': '0.1.0', 'moonbitlang/x': '0.4.30' });
  assert.equal(picked.get('Kaida-Amethyst/path'), '0.1.0');
  assert.equal(picked.get('moonbitlang/x'), '0.4.32');
  // 0.4.39 was never published: the smallest version >= it is 0.4.40.
  assert.equal(resolve(index, { 'moonbitlang/x': '0.4.39' }).get('moonbitlang/x'), '0.4.40');
  const installed = await install(upstream.url, moonHome, { 'Kaida-Amethyst/path': '0.1.1' });
  assert.deepEqual([...installed.keys()], ['Kaida-Amethyst/path', 'moonbitlang/x']);
});

test('resolve: compat sets, path-only deps and the greatest pick', () => {
  const entry = (module: string, version: string, deps: Record<string, unknown> = {}) => ({
    module,
    version,
    checksum: undefined,
    deps: deps as Record<string, string>,
    fields: {},
  });
  const index: RegistryIndex = {
    skippedLines: 0,
    modules: new Map([
      [
        'a/lib',
        new Map([
          ['0.1.0', entry('a/lib', '0.1.0')],
          ['1.2.0', entry('a/lib', '1.2.0')],
          ['2.0.1', entry('a/lib', '2.0.1')],
          ['2.3.0', entry('a/lib', '2.3.0')],
        ]),
      ],
      [
        'b/app',
        new Map([
          ['1.0.0', entry('b/app', '1.0.0', { 'a/lib': { version: '1.1.0' }, 'c/local': { path: '../c' } })],
        ]),
      ],
    ]),
  };
  assert.equal(resolve(index, { 'a/lib': '0.0.5' }).get('a/lib'), '0.1.0');
  assert.equal(resolve(index, { 'a/lib': '2.0.0' }).get('a/lib'), '2.0.1');
  assert.deepEqual(
    [...resolve(index, { 'b/app': '1.0.0', 'a/lib': '0.1.0' })],
    [
      ['a/lib', '1.2.0'],
      ['b/app', '1.0.0'],
    ],
  );
  assert.throws(() => resolve(index, { 'a/lib': '3.0.0' }), /no version of a\/lib/);
});

test('auth: requests without the token get 401, with it they work', async () => {
  const token = 's3cret';
  const server = await FakeUpstream.start({ fixture, auth: { type: 'bearer', token } });
  try {
    const checksum = checksumOf('moonbitlang/core', '0.1.0');
    await assert.rejects(download(server.url, 'moonbitlang/core', '0.1.0', checksum), /HTTP 401/);
    const res = await fetch(`${server.indexUrl}/info/refs?service=git-upload-pack`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
    await res.body?.cancel();
    await assert.rejects(update(server.url, await tempDir()));
    const headers = { Authorization: `Bearer ${token}` };
    assert.equal((await update(server.url, await tempDir(), { headers })).action, 'clone');
    await download(server.url, 'moonbitlang/core', '0.1.0', checksum, { headers });
    assert.ok(server.requestsWithAuthorization(headers.Authorization).length >= 3);
  } finally {
    await server.stop();
  }
});

test('faults: each one fails the download the way it should', async () => {
  const module = 'moonbitlang/core';
  const version = '0.1.0';
  const checksum = checksumOf(module, version);
  const key = `${module}@${version}`;
  const expectations: Array<[Parameters<typeof upstream.faults.set>[1], RegExp]> = [
    ['http500', /HTTP 500/],
    [
      'wrongBytes',
      /Checksum mismatch for moonbitlang\/core@0\.1\.0: expected [0-9a-f]{64}, got [0-9a-f]{64}/,
    ],
    ['truncate', /terminated|other side closed|premature/i],
    ['reset', /fetch failed|ECONNRESET|socket/i],
    ['hang', /aborted|timeout/i],
  ];
  try {
    for (const [fault, expected] of expectations) {
      upstream.faults.set(key, fault);
      await assert.rejects(
        download(upstream.url, module, version, checksum, { timeoutMs: 500 }),
        expected,
        fault,
      );
    }
    upstream.faults.clear();
    await download(upstream.url, module, version, checksum);
    upstream.down();
    await assert.rejects(download(upstream.url, module, version, checksum), /HTTP 503/);
    upstream.up();
    await upstream.close();
    await assert.rejects(download(upstream.url, module, version, checksum), /fetch failed/);
    await upstream.restart();
    await download(upstream.url, module, version, checksum);
  } finally {
    upstream.faults.clear();
    upstream.up();
    await upstream.restart();
  }
});
