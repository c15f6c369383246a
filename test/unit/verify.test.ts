import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sha256Hex } from '../../src/core/checksum.js';
import { parseIndexLine } from '../../src/index/index-file.js';
import { initRegistry } from '../../src/registry/init-registry.js';
import { openRegistry } from '../../src/registry/registry.js';
import { verifyRegistry } from '../../src/registry/verify.js';
import { classifyStorePath, hashFile, scanStore } from '../../src/store/archive-scan.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mr-verify-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const SUM = 'ab'.repeat(32);

test('store paths: an archive exactly where ArchiveStore.pathFor could have put it', () => {
  assert.deepEqual(classifyStorePath(['a', 'b', '1.0.0', `${SUM}.zip`]), {
    module: 'a/b',
    version: '1.0.0',
    checksum: SUM,
  });
  assert.deepEqual(classifyStorePath(['t', 'js', 'test', '0.1.0+build.1', `${SUM}.zip`]), {
    module: 't/js/test',
    version: '0.1.0+build.1',
    checksum: SUM,
  });
  const reasons: Array<[string[], RegExp]> = [
    [['a', 'b', '1.0.0', `${SUM}.zip.part`], /temporary/],
    [['a', 'b', '1.0.0', `.${SUM}.zip.tmp-1-ab`], /temporary/],
    [['a', 'b', '1.0.0', `${SUM.toUpperCase()}.zip`], /archive name/],
    [['a', 'b', '1.0.0', 'notes.txt'], /archive name/],
    [['b', '1.0.0', `${SUM}.zip`], /folder/],
    [['a', 'b', 'latest', `${SUM}.zip`], /folder/],
    [['a', '.b', '1.0.0', `${SUM}.zip`], /folder/],
    [[`${SUM}.zip`], /folder/],
  ];
  for (const [segments, reason] of reasons) {
    const kind = classifyStorePath(segments);
    assert.ok('reason' in kind, segments.join('/'));
    assert.match(kind.reason, reason, segments.join('/'));
  }
});

test('scanStore: archives, stray files, stray folders and links; a missing store is empty', async () => {
  const root = join(dir, 'packages');
  assert.deepEqual(await scanStore(root), { archives: [], strays: [] });
  const version = join(root, 'a', 'b', '1.0.0');
  await mkdir(join(version, 'nested'), { recursive: true });
  await writeFile(join(version, `${SUM}.zip`), 'zip');
  await writeFile(join(version, 'nested', 'x'), 'x');
  await writeFile(join(root, 'junk'), 'junk');
  await mkdir(join(root, 'c', 'd', '2.0.0', `${'cd'.repeat(32)}.zip`), { recursive: true });
  await mkdir(join(root, 'empty', 'folder'), { recursive: true });
  await symlink(join(version, `${SUM}.zip`), join(version, `${'ef'.repeat(32)}.zip`));
  const scan = await scanStore(root);
  assert.deepEqual(
    scan.archives.map((a) => [a.module, a.version, a.checksum]),
    [['a/b', '1.0.0', SUM]],
  );
  assert.deepEqual(
    scan.strays.map((s) => [s.segments.join('/'), s.directory, s.reason]),
    [
      [`a/b/1.0.0/${'ef'.repeat(32)}.zip`, false, 'not a regular file'],
      ['a/b/1.0.0/nested/x', false, 'not an archive name (<sha256>.zip)'],
      [`c/d/2.0.0/${'cd'.repeat(32)}.zip`, true, 'a folder where an archive belongs'],
      ['junk', false, 'not an archive name (<sha256>.zip)'],
    ],
  );
  assert.deepEqual(await hashFile(join(version, `${SUM}.zip`)), { checksum: sha256Hex('zip'), bytes: 3 });
});

test('a served version no fetched source lists: reported, and --repair drops it without network', async () => {
  const layout = await initRegistry(join(dir, 'registry'), { name: 'unit', force: false });
  const registry = await openRegistry(layout.root);
  const bytes = Buffer.from('archive bytes');
  const line = `{"name": "a/b", "version": "1.0.0", "checksum": "${sha256Hex(bytes)}"}`;
  const entry = parseIndexLine('a/b', line);
  assert.ok(typeof entry !== 'string');
  const path = registry.store.locate('a/b', '1.0.0', entry.checksum);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, bytes);
  await registry.servedIndex.publish(new Map([['a/b', [entry]]]), 'test\n');
  const warnings: string[] = [];
  const log = { info: () => undefined, warn: (m: string) => warnings.push(m) };

  const checked = await verifyRegistry(registry, { repair: false, log });
  assert.equal(checked.ok, false);
  assert.deepEqual(
    checked.problems.map((p) => [p.kind, p.module, p.version]),
    [['no-source', 'a/b', '1.0.0']],
  );
  assert.deepEqual(checked.checked, { versions: 1, archives: 1, bytes: bytes.length, assets: 0 });
  assert.match(warnings.join('\n'), /"mooncakes" was never fetched/);

  const repaired = await verifyRegistry(registry, { repair: true, log });
  assert.equal(repaired.ok, false, 'a dropped version is not a repair');
  assert.deepEqual(
    repaired.unrepaired?.map((o) => o.action),
    ['dropped'],
  );
  assert.equal(repaired.index?.changed, true);
  assert.equal((await registry.servedIndex.snapshot())?.modules.size, 0);

  const after = await verifyRegistry(registry, { repair: false, log });
  assert.equal(after.ok, true);
  assert.equal(after.unlisted, 1, 'its archive stays on disk');
});
